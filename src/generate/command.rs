//! `rollcall generate`: writes a synthetic university into a directory.

use std::path::PathBuf;

use anyhow::anyhow;

use super::{FILE_NAMES, GenerateOptions, Size, generate};
use crate::exit::{CommandError, Exit};

/// `rollcall generate (--size S | --students N) [--seed 42] [--drift] [--force] --out DIR`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("how_big").required(true).args(["size", "students"])))]
pub struct GenerateArgs {
    /// A named size: small ≈ 1,000 students, medium ≈ 10,000, large ≈ 40,000.
    #[arg(long, value_enum)]
    pub size: Option<Size>,
    /// The number of students; staff, departments and modules scale from it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    pub students: Option<u32>,
    /// The seed: the same seed and size always give the same files, byte for byte.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also seed the sandbox with pre-existing groups whose members drifted, and unmanaged groups.
    #[arg(long)]
    pub drift: bool,
    /// Replace files already in the output directory.
    #[arg(long)]
    pub force: bool,
    /// The output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Generates and writes the university, then prints what was written.
pub fn run(args: &GenerateArgs) -> Result<Exit, CommandError> {
    let students = match (args.students, args.size) {
        (Some(students), _) => students,
        (None, Some(size)) => size.students(),
        (None, None) => {
            return Err(CommandError::usage(anyhow!(
                "say how big: --size or --students"
            )));
        }
    };
    if !args.force
        && let Some(existing) = FILE_NAMES
            .iter()
            .map(|name| args.out.join(name))
            .find(|path| path.exists())
    {
        return Err(CommandError::usage(anyhow!(
            "{}: already exists; choose another --out directory, or pass --force to replace the generated files",
            existing.display()
        )));
    }
    let options = GenerateOptions {
        students,
        seed: args.seed,
        drift: args.drift,
    };
    let university = generate(&options);
    let written = university.write(&args.out).map_err(CommandError::failed)?;
    let counts = university.counts();
    let seed = university.sandbox_seed();
    println!(
        "generated a university with seed {}: {} people ({} students, {} staff), {} with accounts",
        options.seed,
        counts.students + counts.staff,
        counts.students,
        counts.staff,
        counts.accounts
    );
    println!(
        "{} lists ({} modules, {} departments), {} memberships; sandbox seed: {} users, {} groups",
        counts.lists,
        counts.modules,
        counts.departments,
        counts.memberships,
        seed.users.len(),
        seed.groups.len()
    );
    let owners = university.owner_counts();
    println!(
        "owners: {} module leaders and {} heads of department (the `owner` rows), and the service account {} for every list",
        owners.module_leaders,
        owners.department_heads,
        super::SERVICE_ACCOUNT
    );
    for file in &written.files {
        match file.rows {
            Some(rows) => println!(
                "  {} ({rows} rows, {} bytes)",
                file.path.display(),
                file.bytes
            ),
            None => println!("  {} ({} bytes)", file.path.display(), file.bytes),
        }
    }
    Ok(Exit::Success)
}
