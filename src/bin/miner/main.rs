//! The `miner` command: the library wired to a command line. The commands live in `cli/` (one
//! module per command); `bench` and `output` are the command line's own measuring and printing,
//! not part of the library.

mod bench;
mod cli;
mod output;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
