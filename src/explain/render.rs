//! `explain`'s answers as text for a person at an 80-column terminal.

use chrono::{DateTime, Utc};

use super::{
    Answer, HistoryEntry, IdentityAnswer, ListAnswer, MemberAnswer, OverrideHit, PersonAnswer,
    SourceRow,
};

/// The terminal width the text fits.
const WIDTH: usize = 80;

/// The answer as lines of at most 80 columns, each ending in a line break.
pub fn render(answer: &Answer) -> String {
    let mut out = Text::default();
    match answer {
        Answer::Member(answer) => member(&mut out, answer),
        Answer::List(answer) => list(&mut out, answer),
        Answer::Person(answer) => person(&mut out, answer),
    }
    out.0
}

/// Text being written, wrapped as it goes.
#[derive(Default)]
struct Text(String);

impl Text {
    /// Writes `text` indented by `indent` spaces, wrapped at spaces (a word longer than a
    /// line is cut), continuation lines indented two more.
    fn line(&mut self, indent: usize, text: &str) {
        for line in wrap(text, indent) {
            self.0.push_str(&line);
            self.0.push('\n');
        }
    }
}

fn wrap(text: &str, indent: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = " ".repeat(indent);
    let mut empty = true;
    let next_indent = indent + 2;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let used = current.chars().count();
        let length = word.chars().count();
        if !empty && used + 1 + length > WIDTH {
            lines.push(std::mem::replace(&mut current, " ".repeat(next_indent)));
            empty = true;
        }
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count() + usize::from(!empty);
            let room = WIDTH.saturating_sub(used).max(1);
            if !empty {
                current.push(' ');
            }
            if word.len() <= room {
                current.extend(word.iter());
                empty = false;
                break;
            }
            current.extend(word.drain(..room));
            lines.push(std::mem::replace(&mut current, " ".repeat(next_indent)));
            empty = true;
        }
    }
    lines.push(current);
    lines
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn yes_no(value: Option<bool>, live: bool) -> String {
    let from = if live {
        "read from Microsoft 365 now"
    } else {
        "as of the last run (the mirror; --live reads it now)"
    };
    match value {
        Some(true) => format!("yes, {from}"),
        Some(false) => format!("no, {from}"),
        None => "unknown: no managed group, or the key names no account".to_owned(),
    }
}

fn identity(out: &mut Text, indent: usize, identity: Option<&IdentityAnswer>) {
    let Some(identity) = identity else {
        out.line(
            indent,
            "account: never resolved (no run has looked this key up)",
        );
        return;
    };
    let object = match (&identity.object_id, &identity.display_name) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.clone(),
        (None, _) => "no account in the directory".to_owned(),
    };
    let when = identity
        .resolved_at
        .map_or_else(String::new, |at| format!(", resolved {}", time(at)));
    out.line(
        indent,
        &format!(
            "account: {} {} -> {object}{when}",
            identity.key_kind, identity.key
        ),
    );
}

fn source_row(out: &mut Text, row: &SourceRow) {
    let place = row
        .place
        .as_deref()
        .unwrap_or("(names them; row not traced)");
    out.line(4, &format!("{} ({}) {place}", row.source, row.kind));
    if !row.values.is_empty() {
        let values: Vec<String> = row.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.line(6, &values.join(" "));
    }
}

fn override_hit(out: &mut Text, hit: &OverrideHit) {
    let action = if hit.include { "include" } else { "exclude" };
    let mut window = String::new();
    if let Some(from) = hit.from {
        window.push_str(&format!(" from {}", time(from)));
    }
    if let Some(until) = hit.until {
        window.push_str(&format!(" until {}", time(until)));
    }
    let now = if hit.applies_now {
        "applies now"
    } else {
        "does not apply now"
    };
    let reason = hit
        .reason
        .as_deref()
        .map_or_else(String::new, |r| format!(": {r}"));
    out.line(
        4,
        &format!("{action} by {}{window} ({now}){reason}", hit.origin),
    );
}

fn history_entry(out: &mut Text, entry: &HistoryEntry) {
    let operation = match entry.operation.as_str() {
        "add_member" => "added",
        "remove_member" => "removed",
        other => other,
    };
    let status = if entry.status == "done" {
        String::new()
    } else {
        format!(" [{}]", entry.status)
    };
    out.line(
        4,
        &format!(
            "run {} {} {operation}{status}: {}",
            entry.run,
            time(entry.at),
            entry.reason
        ),
    );
    if let Some(error) = &entry.error {
        out.line(6, &format!("error: {error}"));
    }
}

fn member(out: &mut Text, answer: &MemberAnswer) {
    out.line(
        0,
        &format!("{} on {}: {}", answer.member, answer.list, answer.state),
    );
    out.line(
        2,
        &format!(
            "in Microsoft 365: {}",
            yes_no(answer.in_microsoft_365, answer.live)
        ),
    );
    identity(out, 2, answer.identity.as_ref());
    if let Some(due) = answer.removal_due {
        out.line(2, &format!("pending removal, due {}", time(due)));
    }
    if answer.rows.is_empty() {
        out.line(2, "no source row names them on this list");
    } else {
        out.line(2, "source rows:");
        for row in &answer.rows {
            source_row(out, row);
        }
    }
    if !answer.overrides.is_empty() {
        out.line(2, "overrides:");
        for hit in &answer.overrides {
            override_hit(out, hit);
        }
    }
    if answer.history.is_empty() {
        out.line(2, "history: no run has added or removed them here");
    } else {
        out.line(2, "history:");
        for entry in &answer.history {
            history_entry(out, entry);
        }
    }
    not_named(out, &answer.sources_read, &answer.nearest);
}

/// Which sources were read and the nearest keys, when none names the member.
fn not_named(out: &mut Text, sources: &[String], nearest: &[String]) {
    if sources.is_empty() {
        return;
    }
    out.line(
        2,
        &format!("sources read, none names them: {}", sources.join(", ")),
    );
    if nearest.is_empty() {
        out.line(2, "no key in the sources is near the one asked");
    } else {
        out.line(
            2,
            &format!("nearest keys in the sources: {}", nearest.join(", ")),
        );
    }
}

fn list(out: &mut Text, answer: &ListAnswer) {
    let family = answer
        .family
        .as_deref()
        .map_or_else(String::new, |f| format!(" (family {f})"));
    out.line(0, &format!("list {}{family}", answer.list));
    out.line(
        2,
        &format!(
            "group: {}",
            answer
                .group_id
                .as_deref()
                .unwrap_or("none yet (the next run creates it)")
        ),
    );
    if let Some(title) = &answer.title {
        out.line(2, &format!("title: {title}"));
    }
    if answer.sources.is_empty() {
        out.line(2, "sources: none feeds it now");
    } else {
        out.line(2, &format!("sources: {}", answer.sources.join(", ")));
    }
    let count = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    out.line(
        2,
        &format!(
            "members: {} wanted, {} in Microsoft 365 (the mirror)",
            count(answer.desired),
            count(answer.actual)
        ),
    );
    if answer.held.is_empty() {
        out.line(2, "held: no");
    }
    for hold in &answer.held {
        out.line(
            2,
            &format!("held ({}): {}: {}", hold.seen, hold.reason, hold.message),
        );
        out.line(4, &format!("to release: {}", hold.release));
    }
    if answer.runs.is_empty() {
        out.line(2, "last runs: none changed it");
        return;
    }
    out.line(2, "last runs that changed it:");
    for run in &answer.runs {
        let when = run.started_at.map_or_else(|| "pruned".to_owned(), time);
        let kind = run.kind.as_deref().unwrap_or("?");
        let mut line = format!(
            "run {} {when} {kind}: +{} -{}",
            run.run, run.added, run.removed
        );
        for (n, what) in [
            (run.failed, "failed"),
            (run.pending, "pending"),
            (run.superseded, "superseded"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        out.line(4, &line);
    }
}

fn person(out: &mut Text, answer: &PersonAnswer) {
    out.line(0, &answer.member);
    identity(out, 2, answer.identity.as_ref());
    if answer.lists.is_empty() {
        out.line(2, "on no list, and no list should have them");
    }
    for list in &answer.lists {
        out.line(2, &format!("{}: {}{}", list.list, list.state, why(list)));
    }
    not_named(out, &answer.sources_read, &answer.nearest);
}

/// The shortest why of a member answer: the first row, the override, or the last change.
fn why(answer: &MemberAnswer) -> String {
    if let Some(hit) = answer.overrides.iter().find(|o| o.applies_now) {
        let action = if hit.include { "included" } else { "excluded" };
        return format!(" ({action} by {})", hit.origin);
    }
    if let Some(row) = answer.rows.first() {
        return format!(" ({} {})", row.source, row.place.as_deref().unwrap_or(""))
            .replace(" )", ")");
    }
    answer.history.last().map_or_else(String::new, |last| {
        format!(" (run {}: {})", last.run, last.reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_eighty_columns_and_keep_every_word() {
        let text = format!(
            "source rows: {} and a long tail of words that goes on past the edge of the terminal",
            "/very/long/path/".repeat(8)
        );
        let lines = wrap(&text, 4);
        assert!(lines.len() > 1);
        assert!(
            lines.iter().all(|l| l.chars().count() <= WIDTH),
            "{lines:#?}"
        );
        assert!(lines[1].starts_with("      "));
        let joined: String = lines.concat().split_whitespace().collect();
        let original: String = text.split_whitespace().collect();
        assert_eq!(joined, original);
    }

    #[test]
    fn a_member_answer_names_place_history_and_near_keys() {
        let answer = Answer::Member(MemberAnswer {
            list: "CS101".into(),
            member: "ann@x.org".into(),
            desired: false,
            in_microsoft_365: Some(false),
            live: false,
            state: "not on the list".into(),
            rows: Vec::new(),
            overrides: Vec::new(),
            identity: None,
            history: vec![HistoryEntry {
                run: 4,
                at: "2026-12-01T06:00:00Z".parse().unwrap(),
                operation: "remove_member".into(),
                status: "done".into(),
                reason: "the sources no longer name them".into(),
                error: None,
            }],
            removal_due: None,
            sources_read: vec!["enrolments (csv)".into()],
            nearest: vec!["anne@x.org".into()],
        });
        let text = render(&answer);
        assert!(
            text.contains("run 4 2026-12-01 06:00 UTC removed: the sources"),
            "{text}"
        );
        assert!(text.contains("none names them: enrolments (csv)"), "{text}");
        assert!(
            text.contains("nearest keys in the sources: anne@x.org"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH));
    }
}
