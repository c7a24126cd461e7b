//! The `lookalike` binary: command-line wiring only; everything lives in the library.

fn main() {
    std::process::exit(lookalike::cli::main());
}
