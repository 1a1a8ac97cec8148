//! One list's part of a plan, as the rest of rollcall reads it: the members and owners it
//! gains and loses, its grace, its size before the plan, and its journal operations.

use super::{Leaving, ListChange, ListPlan, ObjectId, Operation, OperationKind, Title};

impl ListPlan {
    /// Members this list gains.
    pub fn adds(&self) -> &[ObjectId] {
        match &self.change {
            ListChange::Create { add, .. } | ListChange::Update { add, .. } => add,
            ListChange::Vanished { .. }
            | ListChange::NotCreated { .. }
            | ListChange::Held { .. } => &[],
        }
    }

    /// Members this list loses.
    pub fn removes(&self) -> &[ObjectId] {
        match &self.change {
            ListChange::Update { remove, .. } | ListChange::Vanished { remove, .. } => remove,
            ListChange::Create { .. } | ListChange::NotCreated { .. } | ListChange::Held { .. } => {
                &[]
            }
        }
    }

    /// Owners this list's group gains.
    pub fn owner_adds(&self) -> &[ObjectId] {
        match &self.change {
            ListChange::Create { owners, .. } => owners,
            ListChange::Update { owners, .. } => &owners.add,
            _ => &[],
        }
    }

    /// Owners this list's group loses (after every owner it gains).
    pub fn owner_removes(&self) -> &[ObjectId] {
        match &self.change {
            ListChange::Update { owners, .. } => &owners.remove,
            _ => &[],
        }
    }

    /// The owner kept against the sources because it is the group's last one.
    pub fn owner_kept(&self) -> Option<ObjectId> {
        match &self.change {
            ListChange::Update { owners, .. } => owners.kept,
            _ => None,
        }
    }

    /// Members who stay on this list until their grace ends.
    pub fn leaving(&self) -> &[Leaving] {
        match &self.change {
            ListChange::Update { leaving, .. } | ListChange::Vanished { leaving, .. } => leaving,
            ListChange::Create { .. } | ListChange::NotCreated { .. } | ListChange::Held { .. } => {
                &[]
            }
        }
    }

    /// The list's member count in Microsoft 365 before the plan (zero without a group).
    pub fn current_size(&self) -> u64 {
        match &self.change {
            ListChange::Update { current, .. }
            | ListChange::Vanished { current, .. }
            | ListChange::Held { current, .. } => *current,
            ListChange::Create { .. } | ListChange::NotCreated { .. } => 0,
        }
    }

    /// The title and description this list's group is to get, when they change.
    pub fn retitle(&self) -> Option<&Title> {
        match &self.change {
            ListChange::Update { retitle, .. } => retitle.as_ref(),
            _ => None,
        }
    }

    /// This list's operations: its create or its new title, then its adds, then its
    /// removes, then its owner adds and owner removes. A held list has none.
    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        let kind = match self.change {
            ListChange::Create { .. } => Some(OperationKind::CreateGroup),
            ListChange::Update {
                retitle: Some(_), ..
            } => Some(OperationKind::UpdateGroup),
            _ => None,
        };
        let create = kind.map(|kind| Operation {
            list: self.key.clone(),
            kind,
            member: None,
        });
        let step = move |kind| {
            move |&member| Operation {
                list: self.key.clone(),
                kind,
                member: Some(member),
            }
        };
        create
            .into_iter()
            .chain(self.adds().iter().map(step(OperationKind::AddMember)))
            .chain(self.removes().iter().map(step(OperationKind::RemoveMember)))
            .chain(self.owner_adds().iter().map(step(OperationKind::AddOwner)))
            .chain(
                self.owner_removes()
                    .iter()
                    .map(step(OperationKind::RemoveOwner)),
            )
    }
}
