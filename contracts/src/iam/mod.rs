//! Identity and access: organizations (GLN, legal name, address, role), licences (ATP status
//! with expiry), member keys, consortium governance (proposals approved by a threshold of
//! validator organizations) and the RBAC table.
//!
//! State keys (all under `i/`):
//! - `i/o/{gln}` → [`Organization`]
//! - `i/k/{key}` → GLN of the organization the active member key signs for
//! - `i/r/{key}` → marker: a revoked key is never admitted again
//! - `i/v` → validator organizations, sorted
//! - `i/p/{id}` → [`Proposal`]; `i/n` → next proposal id
//!
//! Index `organization`: role byte ‖ GLN → empty (who the regulators are, for sealing TI).

use crate::contract::command::*;
use crate::contract::event::Event;
use crate::contract::store::{read_record, write_record, StateRead, StateWriter};
use crate::contract::types::*;
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::PublicKey;

/// Index of organizations by role: `role (u8) ‖ GLN` → empty.
pub const ORGANIZATION_INDEX: &str = "organization";

/// Organizations of `role`, in GLN order.
pub fn organizations_with_role<R: StateRead + crate::contract::store::IndexRead + ?Sized>(
    read: &R,
    role: Role,
) -> Vec<Organization> {
    read.scan(
        ORGANIZATION_INDEX,
        &[role as u8],
        KEYS_PER_ORGANIZATION_MAX * 1024,
    )
    .into_iter()
    .filter_map(|(key, _)| {
        let gln: [u8; 13] = key.get(1..)?.try_into().ok()?;
        organization(read, &Gln(gln))
    })
    .collect()
}

/// A proposal not decided within this many blocks can no longer be voted on.
pub const PROPOSAL_LIFETIME_BLOCKS: u64 = 100_000;
/// Most member keys per organization.
pub const KEYS_PER_ORGANIZATION_MAX: usize = 64;
/// Most validator organizations.
pub const VALIDATOR_ORGANIZATIONS_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Organization {
    pub profile: OrganizationProfile,
    pub licences: Vec<Licence>,
    /// Active member keys.
    pub keys: Vec<PublicKey>,
    /// Consensus key and power when this is a validator organization.
    pub validator: Option<(PublicKey, u64)>,
}

impl Organization {
    pub fn gln(&self) -> Gln {
        self.profile.gln
    }

    pub fn role(&self) -> Role {
        self.profile.role
    }

    /// Rule `iam.atp`: an Authorized Trading Partner on `date` holds an unexpired, unrevoked
    /// licence of the kind its role needs: FDA registration (manufacturer, repackager), a
    /// state licence (wholesaler, dispenser, logistics). Regulators are not trading partners.
    pub fn check_atp(&self, date: Date) -> Result<(), Rejection> {
        let needs_fda = matches!(self.role(), Role::Manufacturer | Role::Repackager);
        if self.role() == Role::Regulator {
            return reject(
                "iam.atp.not_trading_partner",
                format!("{} is a regulator, not a trading partner", self.gln()),
            );
        }
        let valid = self.licences.iter().any(|l| {
            !l.revoked
                && l.expires >= date
                && match l.kind {
                    LicenceKind::FdaRegistration => needs_fda,
                    LicenceKind::StateLicence(_) => !needs_fda,
                    LicenceKind::DeaRegistration => false,
                }
        });
        ensure(valid, "iam.atp.licence_invalid", || {
            format!(
                "{} ({}) holds no valid {} on {}",
                self.gln(),
                self.role().name(),
                if needs_fda {
                    "FDA registration"
                } else {
                    "state licence"
                },
                date.iso()
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub id: u64,
    pub proposer: Gln,
    pub kind: ProposalKind,
    pub expires_height: u64,
    pub votes: Vec<(Gln, bool)>,
    /// `Some(approved)` once decided.
    pub closed: Option<bool>,
}

// ---- keys

pub fn org_key(gln: &Gln) -> Vec<u8> {
    [b"i/o/".as_slice(), &gln.0].concat()
}
pub fn member_key(key: &PublicKey) -> Vec<u8> {
    [b"i/k/".as_slice(), &key.0].concat()
}
fn revoked_key(key: &PublicKey) -> Vec<u8> {
    [b"i/r/".as_slice(), &key.0].concat()
}
const VALIDATORS_KEY: &[u8] = b"i/v";
const NEXT_PROPOSAL_KEY: &[u8] = b"i/n";
fn proposal_key(id: u64) -> Vec<u8> {
    [b"i/p/".as_slice(), &id.to_be_bytes()].concat()
}

pub fn organization<S: StateRead + ?Sized>(state: &S, gln: &Gln) -> Option<Organization> {
    read_record(state, &org_key(gln))
}

pub fn validator_organizations<S: StateRead + ?Sized>(state: &S) -> Vec<Gln> {
    read_record(state, VALIDATORS_KEY).unwrap_or_default()
}

pub fn proposal<S: StateRead + ?Sized>(state: &S, id: u64) -> Option<Proposal> {
    read_record(state, &proposal_key(id))
}

/// The GLN of the organization an active member key signs for, without reading the
/// organization (admission checks every gossiped transaction with it; an organization may hold
/// hundreds of keys). A member key record is only written with its organization, and
/// organizations are never removed, so the key's record answers. Rule `iam.signer_unknown`,
/// like [`signer_organization`], which execution still uses.
pub fn signer_gln<S: StateRead + ?Sized>(state: &S, key: &PublicKey) -> Result<Gln, Rejection> {
    read_record(state, &member_key(key)).ok_or_else(|| {
        Rejection::new(
            "iam.signer_unknown",
            format!("key {key} is not an active member key of any organization"),
        )
    })
}

/// The organization an active member key signs for. Rule `iam.signer_unknown`.
pub fn signer_organization<S: StateRead + ?Sized>(
    state: &S,
    key: &PublicKey,
) -> Result<Organization, Rejection> {
    let gln = signer_gln(state, key)?;
    signer_organization_at(state, key, &gln)
}

/// The organization `gln` that [`signer_gln`] found for `key`. Rule `iam.signer_unknown`.
pub fn signer_organization_at<S: StateRead + ?Sized>(
    state: &S,
    key: &PublicKey,
    gln: &Gln,
) -> Result<Organization, Rejection> {
    organization(state, gln).ok_or_else(|| {
        Rejection::new(
            "iam.signer_unknown",
            format!("organization {gln} of key {key} is unknown"),
        )
    })
}

/// Votes needed among `validators` organizations: more than two thirds (⌊2n/3⌋ + 1), the
/// same fraction consensus needs, so governance cannot outvote the validators' safety quorum.
pub fn approval_threshold(validators: usize) -> usize {
    validators * 2 / 3 + 1
}

// ---- RBAC

/// Which roles may issue which command. Further rules (holding, ownership, ATP status,
/// governance membership) are checked by the command's own decision.
pub const RBAC: &[(CommandKind, &[Role])] = {
    use Role::*;
    const ALL: &[Role] = &[
        Manufacturer,
        Repackager,
        Wholesaler,
        Dispenser,
        Logistics,
        Regulator,
    ];
    const TRADING: &[Role] = &[Manufacturer, Repackager, Wholesaler, Dispenser, Logistics];
    const OWNERS: &[Role] = &[Manufacturer, Repackager, Wholesaler, Dispenser];
    &[
        (CommandKind::Propose, ALL),
        (CommandKind::Vote, ALL),
        (CommandKind::AddMemberKey, ALL),
        (CommandKind::RotateMemberKey, ALL),
        (CommandKind::RevokeMemberKey, ALL),
        (CommandKind::RecordLicence, &[Regulator]),
        (CommandKind::RegisterProduct, &[Manufacturer]),
        (CommandKind::Commission, &[Manufacturer]),
        (CommandKind::Aggregate, TRADING),
        (CommandKind::Disaggregate, TRADING),
        (CommandKind::Ship, TRADING),
        (CommandKind::Receive, TRADING),
        (CommandKind::Dispense, &[Dispenser]),
        (
            CommandKind::VerifyReturn,
            &[Manufacturer, Repackager, Wholesaler],
        ),
        (CommandKind::Decommission, OWNERS),
        (CommandKind::Destroy, OWNERS),
        (CommandKind::Quarantine, TRADING),
        (CommandKind::BeginInvestigation, TRADING),
        (CommandKind::ClearSuspect, OWNERS),
        (CommandKind::DeclareIllegitimate, OWNERS),
        (
            CommandKind::RecallLot,
            &[Manufacturer, Repackager, Regulator],
        ),
        (CommandKind::ResolveException, TRADING),
        (CommandKind::DecidePrescription, &[Dispenser]),
        (CommandKind::Reserve, OWNERS),
        (CommandKind::ReleaseReservation, OWNERS),
        (CommandKind::DispensePrescription, &[Dispenser]),
        (
            CommandKind::SetStorageRequirement,
            &[Manufacturer, Repackager],
        ),
        (CommandKind::AnchorTelemetry, TRADING),
        (CommandKind::RecordExcursion, TRADING),
        (CommandKind::RegisterVehicle, &[Logistics]),
        (CommandKind::OpenDelivery, &[Dispenser]),
        (CommandKind::AssignCourier, &[Dispenser]),
        (CommandKind::PickUp, &[Logistics]),
        (CommandKind::DeliverToPatient, &[Logistics]),
        (CommandKind::FailDelivery, &[Logistics]),
        (CommandKind::CloseDelivery, &[Dispenser]),
        (CommandKind::RecordSagaStep, &[Dispenser]),
    ]
};

/// Rule `rbac.role_forbidden`.
pub fn check_rbac(role: Role, kind: CommandKind) -> Result<(), Rejection> {
    let allowed = RBAC
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, roles)| roles.contains(&role))
        .unwrap_or(false);
    ensure(allowed, "rbac.role_forbidden", || {
        format!("role {} may not issue {kind:?} (RBAC table)", role.name())
    })
}

// ---- decide

fn check_new_key<S: StateRead + ?Sized>(state: &S, key: &PublicKey) -> Result<(), Rejection> {
    ensure(
        state.get(&member_key(key)).is_none(),
        "iam.key.in_use",
        || format!("key {key} is already a member key"),
    )?;
    ensure(
        state.get(&revoked_key(key)).is_none(),
        "iam.key.revoked",
        || format!("key {key} was revoked and cannot be admitted again"),
    )
}

pub fn decide<S: StateRead + ?Sized>(
    state: &S,
    actor: &Organization,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    match command {
        Command::Propose { proposal } => {
            let validators = validator_organizations(state);
            ensure(
                validators.contains(&actor.gln()),
                "governance.not_validator_org",
                || {
                    format!(
                        "{} is not a validator organization and may not propose",
                        actor.gln()
                    )
                },
            )?;
            match proposal {
                ProposalKind::AdmitOrganization { profile, keys, .. } => {
                    profile.gln.check()?;
                    ensure(
                        organization(state, &profile.gln).is_none(),
                        "governance.org_exists",
                        || format!("organization {} is already admitted", profile.gln),
                    )?;
                    ensure(!keys.is_empty(), "governance.org_without_keys", || {
                        format!("organization {} would have no member key", profile.gln)
                    })?;
                    for (i, key) in keys.iter().enumerate() {
                        check_new_key(state, key)?;
                        ensure(!keys[..i].contains(key), "iam.key.in_use", || {
                            format!("key {key} listed twice")
                        })?;
                    }
                }
                ProposalKind::AdmitValidator {
                    gln, voting_power, ..
                } => {
                    ensure(
                        organization(state, gln).is_some(),
                        "governance.org_unknown",
                        || format!("{gln} is not an admitted organization"),
                    )?;
                    ensure(
                        !validators.contains(gln),
                        "governance.already_validator",
                        || format!("{gln} is already a validator organization"),
                    )?;
                    ensure(
                        validators.len() < VALIDATOR_ORGANIZATIONS_MAX,
                        "governance.validators_full",
                        || format!("{VALIDATOR_ORGANIZATIONS_MAX} validator organizations at most"),
                    )?;
                    ensure(*voting_power >= 1, "governance.voting_power", || {
                        "voting power 0".into()
                    })?;
                }
            }
            let id: u64 = read_record(state, NEXT_PROPOSAL_KEY).unwrap_or(0);
            let mut events = vec![Event::ProposalOpened {
                id,
                proposer: actor.gln(),
                proposal: proposal.clone(),
                expires_height: ctx.height.saturating_add(PROPOSAL_LIFETIME_BLOCKS),
            }];
            let open = Proposal {
                id,
                proposer: actor.gln(),
                kind: proposal.clone(),
                expires_height: ctx.height.saturating_add(PROPOSAL_LIFETIME_BLOCKS),
                votes: Vec::new(),
                closed: None,
            };
            events.extend(vote_events(&open, actor.gln(), true, validators.len()));
            Ok(events)
        }
        Command::Vote {
            proposal_id,
            approve,
        } => {
            let validators = validator_organizations(state);
            ensure(
                validators.contains(&actor.gln()),
                "governance.not_validator_org",
                || {
                    format!(
                        "{} is not a validator organization and may not vote",
                        actor.gln()
                    )
                },
            )?;
            let proposal = proposal(state, *proposal_id).ok_or_else(|| {
                Rejection::new(
                    "governance.proposal_unknown",
                    format!("no proposal {proposal_id}"),
                )
            })?;
            ensure(
                proposal.closed.is_none(),
                "governance.proposal_closed",
                || format!("proposal {proposal_id} is already decided"),
            )?;
            ensure(
                ctx.height <= proposal.expires_height,
                "governance.proposal_expired",
                || {
                    format!(
                        "proposal {proposal_id} expired at height {}",
                        proposal.expires_height
                    )
                },
            )?;
            ensure(
                !proposal.votes.iter().any(|(g, _)| *g == actor.gln()),
                "governance.already_voted",
                || format!("{} already voted on proposal {proposal_id}", actor.gln()),
            )?;
            // The target may have been admitted by another proposal meanwhile.
            if let (true, ProposalKind::AdmitOrganization { profile, .. }) =
                (*approve, &proposal.kind)
            {
                ensure(
                    organization(state, &profile.gln).is_none(),
                    "governance.org_exists",
                    || format!("organization {} was admitted meanwhile", profile.gln),
                )?;
            }
            Ok(vote_events(
                &proposal,
                actor.gln(),
                *approve,
                validators.len(),
            ))
        }
        Command::AddMemberKey { key } => {
            check_new_key(state, key)?;
            ensure(
                actor.keys.len() < KEYS_PER_ORGANIZATION_MAX,
                "iam.key.too_many",
                || {
                    format!(
                        "{} already has {KEYS_PER_ORGANIZATION_MAX} keys",
                        actor.gln()
                    )
                },
            )?;
            Ok(vec![Event::MemberKeyAdded {
                gln: actor.gln(),
                key: *key,
            }])
        }
        Command::RotateMemberKey { old, new } => {
            ensure(actor.keys.contains(old), "iam.key.not_member", || {
                format!("key {old} is not a key of {}", actor.gln())
            })?;
            check_new_key(state, new)?;
            Ok(vec![
                Event::MemberKeyAdded {
                    gln: actor.gln(),
                    key: *new,
                },
                Event::MemberKeyRevoked {
                    gln: actor.gln(),
                    key: *old,
                },
            ])
        }
        Command::RevokeMemberKey { key } => {
            ensure(actor.keys.contains(key), "iam.key.not_member", || {
                format!("key {key} is not a key of {}", actor.gln())
            })?;
            ensure(actor.keys.len() > 1, "iam.key.last_key", || {
                format!("{key} is the last key of {}: rotate instead", actor.gln())
            })?;
            Ok(vec![Event::MemberKeyRevoked {
                gln: actor.gln(),
                key: *key,
            }])
        }
        Command::RecordLicence { gln, licence } => {
            ensure(
                organization(state, gln).is_some(),
                "iam.org_unknown",
                || format!("no organization {gln}"),
            )?;
            Ok(vec![Event::LicenceRecorded {
                gln: *gln,
                licence: licence.clone(),
            }])
        }
        _ => reject(
            "contract.not_iam",
            format!("{:?} is not an IAM command", command.kind()),
        ),
    }
}

/// The vote's event, and the closing events if it decides the proposal.
fn vote_events(proposal: &Proposal, voter: Gln, approve: bool, validators: usize) -> Vec<Event> {
    let mut events = vec![Event::VoteCast {
        id: proposal.id,
        voter,
        approve,
    }];
    let threshold = approval_threshold(validators);
    let yes = proposal.votes.iter().filter(|(_, a)| *a).count() + usize::from(approve);
    let no = proposal.votes.iter().filter(|(_, a)| !*a).count() + usize::from(!approve);
    if yes >= threshold {
        events.push(Event::ProposalClosed {
            id: proposal.id,
            approved: true,
        });
        match &proposal.kind {
            ProposalKind::AdmitOrganization {
                profile,
                keys,
                licences,
            } => events.push(Event::OrganizationAdmitted {
                profile: profile.clone(),
                keys: keys.clone(),
                licences: licences.clone(),
            }),
            ProposalKind::AdmitValidator {
                gln,
                consensus_key,
                voting_power,
            } => events.push(Event::ValidatorAdmitted {
                gln: *gln,
                consensus_key: *consensus_key,
                voting_power: *voting_power,
            }),
        }
    } else if no > validators.saturating_sub(threshold) {
        events.push(Event::ProposalClosed {
            id: proposal.id,
            approved: false,
        });
    }
    events
}

// ---- evolve

pub fn evolve<W: StateWriter + ?Sized>(state: &mut W, event: &Event) {
    match event {
        Event::OrganizationAdmitted {
            profile,
            keys,
            licences,
        } => {
            for key in keys {
                write_record(state, member_key(key), &profile.gln);
            }
            let org = Organization {
                profile: profile.clone(),
                licences: licences.clone(),
                keys: keys.clone(),
                validator: None,
            };
            write_record(state, org_key(&profile.gln), &org);
            state.index(
                ORGANIZATION_INDEX,
                [&[profile.role as u8][..], &profile.gln.0].concat(),
                Vec::new(),
            );
        }
        Event::ValidatorAdmitted {
            gln,
            consensus_key,
            voting_power,
        } => {
            if let Some(mut org) = organization(state, gln) {
                org.validator = Some((*consensus_key, *voting_power));
                write_record(state, org_key(gln), &org);
            }
            let mut validators = validator_organizations(state);
            if let Err(at) = validators.binary_search(gln) {
                validators.insert(at, *gln);
            }
            write_record(state, VALIDATORS_KEY.to_vec(), &validators);
        }
        Event::ProposalOpened {
            id,
            proposer,
            proposal,
            expires_height,
        } => {
            let record = Proposal {
                id: *id,
                proposer: *proposer,
                kind: proposal.clone(),
                expires_height: *expires_height,
                votes: Vec::new(),
                closed: None,
            };
            write_record(state, proposal_key(*id), &record);
            write_record(state, NEXT_PROPOSAL_KEY.to_vec(), &(id + 1));
        }
        Event::VoteCast { id, voter, approve } => {
            if let Some(mut record) = proposal(state, *id) {
                record.votes.push((*voter, *approve));
                write_record(state, proposal_key(*id), &record);
            }
        }
        Event::ProposalClosed { id, approved } => {
            if let Some(mut record) = proposal(state, *id) {
                record.closed = Some(*approved);
                write_record(state, proposal_key(*id), &record);
            }
        }
        Event::MemberKeyAdded { gln, key } => {
            if let Some(mut org) = organization(state, gln) {
                org.keys.push(*key);
                write_record(state, org_key(gln), &org);
                write_record(state, member_key(key), gln);
            }
        }
        Event::MemberKeyRevoked { gln, key } => {
            if let Some(mut org) = organization(state, gln) {
                org.keys.retain(|k| k != key);
                write_record(state, org_key(gln), &org);
                state.put(member_key(key), None);
                state.put(revoked_key(key), Some(gln.0.to_vec()));
            }
        }
        Event::LicenceRecorded { gln, licence } => {
            if let Some(mut org) = organization(state, gln) {
                match org.licences.iter_mut().find(|l| l.kind == licence.kind) {
                    Some(existing) => *existing = licence.clone(),
                    None => org.licences.push(licence.clone()),
                }
                write_record(state, org_key(gln), &org);
            }
        }
        _ => {}
    }
}

// ---- genesis

/// An organization of the genesis file. Mirrors node/src/genesis.rs `GenesisOrganization`
/// (name, gln, role, keys), plus what IAM needs that the node file may add later: address,
/// licences, and whether it is a validator organization (with its consensus key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisOrganization {
    pub name: String,
    pub gln: String,
    /// manufacturer | repackager | wholesaler | dispenser | logistics | regulator
    pub role: String,
    pub keys: Vec<PublicKey>,
    pub address: String,
    pub licences: Vec<Licence>,
    /// Consensus key and voting power when this organization runs a validator.
    pub validator: Option<(PublicKey, u64)>,
}

/// The events that build the initial IAM state: one `OrganizationAdmitted` per organization,
/// one `ValidatorAdmitted` per validator organization. Checks every field and rejects
/// duplicates (GLN or key).
pub fn genesis_events(organizations: &[GenesisOrganization]) -> Result<Vec<Event>, Rejection> {
    let mut events = Vec::new();
    let mut glns: Vec<Gln> = Vec::new();
    let mut keys: Vec<PublicKey> = Vec::new();
    for org in organizations {
        let gln = Gln::parse(&org.gln)?;
        let role = Role::from_name(&org.role).ok_or_else(|| {
            Rejection::new(
                "genesis.role_unknown",
                format!("{}: role {:?}", org.gln, org.role),
            )
        })?;
        check_text("name", &org.name, TEXT_BYTES_MAX, true)?;
        check_text("address", &org.address, TEXT_BYTES_MAX, false)?;
        ensure(!glns.contains(&gln), "genesis.duplicate_gln", || {
            format!("GLN {gln} twice")
        })?;
        ensure(!org.keys.is_empty(), "genesis.org_without_keys", || {
            format!("{gln} has no key")
        })?;
        for key in &org.keys {
            ensure(!keys.contains(key), "genesis.duplicate_key", || {
                format!("key {key} twice")
            })?;
            keys.push(*key);
        }
        glns.push(gln);
        events.push(Event::OrganizationAdmitted {
            profile: OrganizationProfile {
                gln,
                legal_name: org.name.clone(),
                address: org.address.clone(),
                role,
            },
            keys: org.keys.clone(),
            licences: org.licences.clone(),
        });
        if let Some((consensus_key, voting_power)) = org.validator {
            events.push(Event::ValidatorAdmitted {
                gln,
                consensus_key,
                voting_power,
            });
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fixtures::*;
    use crate::contract::gwt::genesis;
    use crate::contract::TxResult;

    fn newcomer() -> ProposalKind {
        ProposalKind::AdmitOrganization {
            profile: OrganizationProfile {
                gln: Gln::parse("0300070000000").unwrap(),
                legal_name: "New Pharmacy".into(),
                address: "2 High St".into(),
                role: Role::Dispenser,
            },
            keys: vec![PublicKey([70; 32])],
            licences: licence_for(Role::Dispenser),
        }
    }

    #[test]
    fn rbac_table_covers_every_command_once() {
        let kinds = [
            CommandKind::Propose,
            CommandKind::Vote,
            CommandKind::AddMemberKey,
            CommandKind::RotateMemberKey,
            CommandKind::RevokeMemberKey,
            CommandKind::RecordLicence,
            CommandKind::RegisterProduct,
            CommandKind::Commission,
            CommandKind::Aggregate,
            CommandKind::Disaggregate,
            CommandKind::Ship,
            CommandKind::Receive,
            CommandKind::Dispense,
            CommandKind::VerifyReturn,
            CommandKind::Decommission,
            CommandKind::Destroy,
            CommandKind::Quarantine,
            CommandKind::BeginInvestigation,
            CommandKind::ClearSuspect,
            CommandKind::DeclareIllegitimate,
            CommandKind::RecallLot,
            CommandKind::ResolveException,
            CommandKind::DecidePrescription,
            CommandKind::Reserve,
            CommandKind::ReleaseReservation,
            CommandKind::DispensePrescription,
            CommandKind::SetStorageRequirement,
            CommandKind::AnchorTelemetry,
            CommandKind::RecordExcursion,
            CommandKind::RegisterVehicle,
            CommandKind::OpenDelivery,
            CommandKind::AssignCourier,
            CommandKind::PickUp,
            CommandKind::DeliverToPatient,
            CommandKind::FailDelivery,
            CommandKind::CloseDelivery,
            CommandKind::RecordSagaStep,
        ];
        for kind in kinds {
            assert_eq!(
                RBAC.iter().filter(|(k, _)| *k == kind).count(),
                1,
                "{kind:?}"
            );
        }
        assert_eq!(RBAC.len(), kinds.len());
        assert_eq!(
            check_rbac(Role::Logistics, CommandKind::Dispense)
                .unwrap_err()
                .code,
            "rbac.role_forbidden"
        );
        assert!(check_rbac(Role::Dispenser, CommandKind::Dispense).is_ok());
    }

    #[test]
    fn threshold_is_more_than_two_thirds() {
        assert_eq!(approval_threshold(1), 1);
        assert_eq!(approval_threshold(3), 3);
        assert_eq!(approval_threshold(4), 3);
        assert_eq!(approval_threshold(7), 5);
    }

    #[test]
    fn genesis_builds_organizations_keys_and_validators() {
        let scenario = genesis();
        assert_eq!(
            validator_organizations(&scenario.ledger),
            vec![MANUFACTURER.gln(), WHOLESALER.gln(), DISPENSER.gln()]
        );
        assert_eq!(
            signer_organization(&scenario.ledger, &DISPENSER.key())
                .unwrap()
                .role(),
            Role::Dispenser
        );
        let mut twice = demo_organizations();
        twice.push(twice[0].clone());
        assert_eq!(
            genesis_events(&twice).unwrap_err().code,
            "genesis.duplicate_gln"
        );
        let mut bad_role = demo_organizations();
        bad_role[0].role = "pirate".into();
        assert_eq!(
            genesis_events(&bad_role).unwrap_err().code,
            "genesis.role_unknown"
        );
    }

    #[test]
    fn admitting_an_organization_needs_the_validator_threshold() {
        let scenario = genesis();
        scenario
            .when(
                LOGISTICS,
                Command::Propose {
                    proposal: newcomer(),
                },
            )
            .then_reject("governance.not_validator_org");
        let opened = scenario.after(
            MANUFACTURER,
            Command::Propose {
                proposal: newcomer(),
            },
        );
        assert!(organization(&opened.ledger, &Gln::parse("0300070000000").unwrap()).is_none());
        opened
            .when(
                MANUFACTURER,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            )
            .then_reject("governance.already_voted");
        opened
            .when(
                REGULATOR,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            )
            .then_reject("governance.not_validator_org");
        // 3 validator organizations: threshold 3.
        let two = opened.after(
            WHOLESALER,
            Command::Vote {
                proposal_id: 0,
                approve: true,
            },
        );
        assert!(proposal(&two.ledger, 0).unwrap().closed.is_none());
        let admitted = two.after(
            DISPENSER,
            Command::Vote {
                proposal_id: 0,
                approve: true,
            },
        );
        assert_eq!(proposal(&admitted.ledger, 0).unwrap().closed, Some(true));
        let org = signer_organization(&admitted.ledger, &PublicKey([70; 32])).unwrap();
        assert_eq!(org.profile.legal_name, "New Pharmacy");
        admitted
            .when(
                DISPENSER,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            )
            .then_reject("governance.proposal_closed");
    }

    #[test]
    fn proposals_expire() {
        let mut opened = genesis().after(
            MANUFACTURER,
            Command::Propose {
                proposal: newcomer(),
            },
        );
        opened.ledger.height += PROPOSAL_LIFETIME_BLOCKS;
        opened
            .when(
                WHOLESALER,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            )
            .then_reject("governance.proposal_expired");
        opened
            .when(
                WHOLESALER,
                Command::Vote {
                    proposal_id: 9,
                    approve: true,
                },
            )
            .then_reject("governance.proposal_unknown");
    }

    #[test]
    fn a_single_no_vote_can_block_when_the_threshold_is_unanimous() {
        let rejected = genesis()
            .after(
                MANUFACTURER,
                Command::Propose {
                    proposal: newcomer(),
                },
            )
            .after(
                WHOLESALER,
                Command::Vote {
                    proposal_id: 0,
                    approve: false,
                },
            );
        assert_eq!(proposal(&rejected.ledger, 0).unwrap().closed, Some(false));
    }

    #[test]
    fn admitting_a_validator_organization() {
        let admitted = genesis()
            .after(
                MANUFACTURER,
                Command::Propose {
                    proposal: ProposalKind::AdmitValidator {
                        gln: LOGISTICS.gln(),
                        consensus_key: PublicKey([44; 32]),
                        voting_power: 1,
                    },
                },
            )
            .after(
                WHOLESALER,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            )
            .after(
                DISPENSER,
                Command::Vote {
                    proposal_id: 0,
                    approve: true,
                },
            );
        assert!(validator_organizations(&admitted.ledger).contains(&LOGISTICS.gln()));
        assert_eq!(
            organization(&admitted.ledger, &LOGISTICS.gln())
                .unwrap()
                .validator,
            Some((PublicKey([44; 32]), 1))
        );
    }

    #[test]
    fn member_keys_are_added_rotated_and_revoked() {
        let mut scenario = genesis().after(
            WHOLESALER,
            Command::AddMemberKey {
                key: PublicKey([20; 32]),
            },
        );
        scenario
            .when(
                DISPENSER,
                Command::AddMemberKey {
                    key: PublicKey([20; 32]),
                },
            )
            .then_reject("iam.key.in_use");
        // The new key signs for the wholesaler.
        scenario = scenario.after_key_rotate();
        assert!(signer_organization(&scenario.ledger, &WHOLESALER.key()).is_err());
        assert_eq!(
            signer_organization(&scenario.ledger, &PublicKey([21; 32]))
                .unwrap()
                .gln(),
            WHOLESALER.gln()
        );
        // A revoked key stays out.
        assert_eq!(
            scenario.execute_key(
                PublicKey([20; 32]),
                &Command::AddMemberKey {
                    key: WHOLESALER.key()
                }
            ),
            TxResult::Rejected {
                code: "iam.key.revoked".into(),
                reason: format!(
                    "key {} was revoked and cannot be admitted again",
                    WHOLESALER.key()
                )
            }
        );
        scenario
            .when(
                DISPENSER,
                Command::RevokeMemberKey {
                    key: DISPENSER.key(),
                },
            )
            .then_reject("iam.key.last_key");
        scenario
            .when(
                DISPENSER,
                Command::RevokeMemberKey {
                    key: PublicKey([20; 32]),
                },
            )
            .then_reject("iam.key.not_member");
    }

    impl crate::contract::gwt::Scenario {
        fn after_key_rotate(mut self) -> Self {
            let result = self.execute_key(
                PublicKey([20; 32]),
                &Command::RotateMemberKey {
                    old: WHOLESALER.key(),
                    new: PublicKey([21; 32]),
                },
            );
            assert_eq!(result, TxResult::Accepted);
            self
        }
    }

    #[test]
    fn licences_are_recorded_by_regulators() {
        let licence = Licence {
            kind: LicenceKind::DeaRegistration,
            number: "DEA-1".into(),
            expires: Date::new(2029, 1, 1),
            revoked: false,
        };
        let scenario = genesis();
        scenario
            .when(
                WHOLESALER,
                Command::RecordLicence {
                    gln: WHOLESALER.gln(),
                    licence: licence.clone(),
                },
            )
            .then_reject("rbac.role_forbidden");
        let recorded = scenario.after(
            REGULATOR,
            Command::RecordLicence {
                gln: WHOLESALER.gln(),
                licence: licence.clone(),
            },
        );
        assert!(organization(&recorded.ledger, &WHOLESALER.gln())
            .unwrap()
            .licences
            .contains(&licence));
    }
}
