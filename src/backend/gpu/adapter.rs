//! Adapter selection and device opening: which adapters wgpu sees, which one `--adapter` (or
//! the default preference) picks, opening its device, and whether the options fit its limits.
//! The choice itself ([`choose`]) is pure, over the adapters' names and types, so it is tested
//! without a device.

use super::{AdapterSummary, GpuError, GpuOptions, MAX_DISPATCH};

/// An instance of every compiled-in backend, or those `WGPU_BACKEND` names (e.g. `vulkan`).
fn instance() -> (wgpu::Instance, wgpu::Backends) {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    (wgpu::Instance::new(desc), backends)
}

/// Every adapter `instance` finds, in wgpu's order.
fn adapters((instance, backends): &(wgpu::Instance, wgpu::Backends)) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(*backends))
}

/// The `miner devices` line of the adapter at `index`.
fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

/// Every adapter wgpu finds, in its order (the index `--adapter` takes).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

/// Rank of a device type when no adapter is named (lower first): discrete, integrated,
/// virtual, other, then software.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The index of the adapter `selector` names among `adapters` (name and type of each, in
/// wgpu's order): an index when it is a number, else the first whose name contains it
/// (case-insensitive); with no selector, the most capable by [`preference`] (the first of
/// equals). The errors list the adapters.
pub(super) fn choose(
    adapters: &[(String, wgpu::DeviceType)],
    selector: Option<&str>,
) -> Result<usize, GpuError> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let Some(sel) = selector else {
        return Ok((0..adapters.len())
            .min_by_key(|&i| preference(adapters[i].1))
            .unwrap_or(0));
    };
    let sel = sel.trim();
    let names = || {
        adapters
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{i}: {name}"))
            .collect::<Vec<String>>()
            .join(", ")
    };
    match sel.parse::<usize>() {
        // A number is an index only: "5" must not pick "llvmpipe (LLVM 15.0.6)".
        Ok(i) if i < adapters.len() => Ok(i),
        Ok(i) => Err(GpuError::NoSuchIndex(i, adapters.len(), names())),
        Err(_) => adapters
            .iter()
            .position(|(name, _)| name.to_lowercase().contains(&sel.to_lowercase()))
            .ok_or_else(|| GpuError::NoSuchAdapter(sel.to_string(), names())),
    }
}

/// Opens the adapter `selector` names ([`choose`]): its summary, limits, device and queue.
pub(super) fn open(
    selector: Option<&str>,
) -> Result<(AdapterSummary, wgpu::Limits, wgpu::Device, wgpu::Queue), GpuError> {
    let instance = instance();
    let all = adapters(&instance);
    let named: Vec<(String, wgpu::DeviceType)> = all
        .iter()
        .map(|a| {
            let info = a.get_info();
            (info.name, info.device_type)
        })
        .collect();
    let index = choose(&named, selector)?;
    let adapter = &all[index];
    let info = summary(index, adapter);
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("miner"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| GpuError::Device(info.name.clone(), e.to_string()))?;
    Ok((info, limits, device, queue))
}

/// Whether `options` fit the adapter's limits; the error names the flag and the limit.
pub(super) fn check_options(
    options: &GpuOptions,
    limits: &wgpu::Limits,
    adapter: &str,
) -> Result<(), GpuError> {
    let most = limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x);
    if options.workgroup_size == 0 || options.workgroup_size > most {
        return Err(GpuError::Options(format!(
            "--gpu-workgroup-size {}: {adapter} takes 1 to {most} invocations per workgroup; pass a size in that range (256 suits most GPUs)",
            options.workgroup_size
        )));
    }
    if options.nonces_per_invocation == 0 {
        return Err(GpuError::Options(
            "--gpu-nonces-per-invocation must be at least 1".to_string(),
        ));
    }
    // One workgroup is the smallest dispatch; it must fit in the largest.
    let per_group = u64::from(options.workgroup_size) * u64::from(options.nonces_per_invocation);
    if per_group > MAX_DISPATCH {
        return Err(GpuError::Options(format!(
            "--gpu-nonces-per-invocation {} with --gpu-workgroup-size {}: a workgroup would cover {per_group} nonces, more than the {MAX_DISPATCH} one dispatch may take; lower the nonces per invocation",
            options.nonces_per_invocation, options.workgroup_size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};

    fn list(items: &[(&str, wgpu::DeviceType)]) -> Vec<(String, wgpu::DeviceType)> {
        items.iter().map(|&(n, t)| (n.to_string(), t)).collect()
    }

    #[test]
    fn with_no_selector_the_most_capable_type_wins_and_ties_keep_wgpus_order() {
        let all = list(&[
            ("llvmpipe (LLVM 15.0.6, 256 bits)", Cpu),
            ("Intel UHD 770", IntegratedGpu),
            ("NVIDIA H100", DiscreteGpu),
            ("NVIDIA H200", DiscreteGpu),
        ]);
        assert_eq!(choose(&all, None).ok(), Some(2));
        assert_eq!(choose(&all[..2], None).ok(), Some(1));
        assert_eq!(choose(&all[..1], None).ok(), Some(0));
        assert!(matches!(choose(&[], None), Err(GpuError::NoAdapter)));
        assert!(matches!(choose(&[], Some("0")), Err(GpuError::NoAdapter)));
    }

    #[test]
    fn a_number_is_an_index_and_never_part_of_a_name() {
        let all = list(&[
            ("llvmpipe (LLVM 15.0.6)", Cpu),
            ("NVIDIA H100", DiscreteGpu),
        ]);
        assert_eq!(choose(&all, Some("0")).ok(), Some(0));
        assert_eq!(choose(&all, Some(" 1 ")).ok(), Some(1));
        // "15" is in the first name, but a number is an index: there is no adapter 15.
        let e = choose(&all, Some("15")).unwrap_err().to_string();
        assert!(
            e.contains("--adapter 15") && e.contains("2 found") && e.contains("1: NVIDIA H100"),
            "{e}"
        );
    }

    #[test]
    fn a_name_matches_any_part_case_insensitively_and_a_miss_lists_the_adapters() {
        let all = list(&[
            ("llvmpipe (LLVM 15.0.6)", Cpu),
            ("NVIDIA H100", DiscreteGpu),
        ]);
        assert_eq!(choose(&all, Some("h100")).ok(), Some(1));
        assert_eq!(choose(&all, Some("LLVMpipe")).ok(), Some(0));
        let e = choose(&all, Some("radeon")).unwrap_err().to_string();
        assert!(
            e.contains("'radeon'") && e.contains("0: llvmpipe (LLVM 15.0.6), 1: NVIDIA H100"),
            "{e}"
        );
    }

    #[test]
    fn options_beyond_the_adapter_limits_are_refused_with_the_flag_and_the_limit() {
        // WebGPU's default limits: 256 invocations per workgroup.
        let limits = wgpu::Limits::default();
        let ok = GpuOptions::default();
        assert!(check_options(&ok, &limits, "test adapter").is_ok());
        let big = GpuOptions {
            workgroup_size: 512,
            ..ok
        };
        let e = check_options(&big, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--gpu-workgroup-size 512") && e.contains("1 to 256"),
            "{e}"
        );
        let none = GpuOptions {
            nonces_per_invocation: 0,
            ..ok
        };
        let e = check_options(&none, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--gpu-nonces-per-invocation"), "{e}");
        // A workgroup of more nonces than one dispatch may take (2^8 x 2^24 = 2^32).
        let huge = GpuOptions {
            nonces_per_invocation: 1 << 24,
            ..ok
        };
        let e = check_options(&huge, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--gpu-nonces-per-invocation 16777216") && e.contains("2147483648"),
            "{e}"
        );
        let most = GpuOptions {
            nonces_per_invocation: 1 << 23,
            ..ok
        };
        assert!(check_options(&most, &limits, "test adapter").is_ok());
    }
}
