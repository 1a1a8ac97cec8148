//! Small numbered tenants for the sandbox and Graph client tests: user and group ids that
//! read back as their numbers, and seeds built from member lists.

use rollcall::sandbox::{Seed, SeedGroup, SeedUser};

/// The object id of user number `n`.
pub fn user_id(n: usize) -> String {
    format!("00000000-0000-0000-0000-{n:012}")
}

/// The object id of group number `n`.
pub fn group_id(n: usize) -> String {
    format!("11111111-0000-0000-0000-{n:012}")
}

/// `users` users, and one Microsoft 365 group per entry with the given member numbers.
pub fn seed(users: usize, groups: &[&[usize]]) -> Seed {
    Seed {
        users: (0..users)
            .map(|n| SeedUser {
                id: user_id(n),
                user_principal_name: format!("user{n}@example.ac.uk"),
                mail: Some(format!("User{n}@Example.ac.uk")),
                employee_id: Some(format!("E{n:05}")),
                display_name: format!("User {n}"),
                ..SeedUser::default()
            })
            .collect(),
        groups: groups
            .iter()
            .enumerate()
            .map(|(g, members)| SeedGroup {
                id: Some(group_id(g)),
                display_name: format!("List {g}"),
                mail_nickname: format!("list-{g}"),
                description: None,
                group_types: vec!["Unified".to_owned()],
                mail_enabled: true,
                security_enabled: false,
                members: members.iter().map(|&n| user_id(n)).collect(),
                extensions: Vec::new(),
                owners: Vec::new(),
            })
            .collect(),
    }
}
