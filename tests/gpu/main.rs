//! The GPU backend's integration tests, in one test binary (feature `gpu`): the WGSL kernel on a
//! real Vulkan device against the CPU (`gpu`) and its SPIR-V operations per nonce, which need no
//! device (`shader_ops`). See tests/engine/main.rs for why the tests are gathered this way.

mod gpu;
mod shader_ops;
