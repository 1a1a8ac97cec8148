//! `rollcall explain`: why a member is (not) on a list, what a list is, and every list a
//! person is or should be on. Read-only; see [`crate::explain`].

use clap::Args;

use super::Context;
use super::reconcile::Output;
use crate::exit::{CommandError, Exit};
use crate::explain::{Question, explain, render};

/// `rollcall explain LIST [MEMBER]` / `rollcall explain --member KEY`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The list key (any case).
    #[arg(required_unless_present = "person")]
    pub list: Option<String>,
    /// The member, as `kind:value` (upn, mail, employee_id, object_id) or a bare key.
    #[arg(requires = "list")]
    pub member: Option<String>,
    /// Every list this person is or should be on, one line each.
    #[arg(
        long = "member",
        id = "person",
        value_name = "KEY",
        conflicts_with = "list"
    )]
    pub person: Option<String>,
    /// Read the list's members from Microsoft 365 now, not from the state database's mirror.
    #[arg(long)]
    pub live: bool,
    /// Readable text or one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// Answers and prints the question.
pub async fn run(context: &Context, args: ExplainArgs) -> Result<Exit, CommandError> {
    let config = context.config()?;
    let question = Question {
        list: args.list,
        member: args.member.or(args.person),
        live: args.live,
    };
    let answer = explain(&config, &question, crate::clock::now()).await?;
    match args.output {
        Output::Human => print!("{}", render(&answer)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&answer).map_err(CommandError::failed)?
        ),
    }
    Ok(Exit::Success)
}
