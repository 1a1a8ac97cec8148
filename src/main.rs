use std::process::ExitCode;

fn main() -> ExitCode {
    rollcall::cli::main()
}
