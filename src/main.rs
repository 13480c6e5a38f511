use std::process::ExitCode;

fn main() -> ExitCode {
    statelab::cli::main()
}
