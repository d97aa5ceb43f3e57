fn main() {
    if let Err(e) = miner::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
