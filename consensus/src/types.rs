//! Consensus messages (proposals and votes), what validators sign, and the limits on them.

use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::limits::BLOCK_BYTES_MAX;
use pharmalink_ledger::{
    vote_signing_digest, Block, Canonical, Domain, Hash, LedgerError, Signature, VoteKind,
};

/// A height: 1 is the first block after genesis.
pub type Height = u64;
/// A round within one height; round 0 is the first.
pub type Round = u32;
/// A validator's position in the validator set (the same index a `CommitSignature` carries).
pub type ValidatorIndex = u16;

/// Canonical bytes of one consensus message: a whole block plus a fixed envelope.
pub const MESSAGE_BYTES_MAX: usize = BLOCK_BYTES_MAX + 1024;

/// The step of a round, in the paper's order. `Ord` follows the order in which a validator signs
/// within one round: proposal, then prevote, then precommit.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

impl Step {
    pub fn of_vote(kind: VoteKind) -> Step {
        match kind {
            VoteKind::Prevote => Step::Prevote,
            VoteKind::Precommit => Step::Precommit,
        }
    }
}

/// ⟨PREVOTE|PRECOMMIT, h, r, id(v) or nil⟩ from one validator.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: Height,
    pub round: Round,
    /// The block hash voted for; `None` is nil.
    pub value: Option<Hash>,
    pub validator_index: ValidatorIndex,
}

impl Vote {
    /// What the validator signs: exactly the digest a `CommitCertificate` verifies for precommits.
    pub fn signing_digest(&self, chain_id: &str) -> Hash {
        vote_signing_digest(chain_id, self.kind, self.height, self.round, self.value)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub signature: Signature,
}

/// ⟨PROPOSAL, h, r, v, vr⟩: the proposer of (h, r) proposes block v; `pol_round` is the paper's
/// validRound (`None` for −1): the round in which the proposer saw a polka for v.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub block: Block,
    pub pol_round: Option<Round>,
    pub proposer_index: ValidatorIndex,
}

#[derive(BorshSerialize)]
struct ProposalSigningFields<'a> {
    /// Separates proposal digests from everything else hashed in the Application domain.
    tag: &'a str,
    chain_id: &'a str,
    height: Height,
    round: Round,
    block_hash: Hash,
    pol_round: Option<Round>,
}

/// Sub-tag of proposal signing digests. Ledger has no `Domain::Proposal` yet; the Application
/// domain with this tag keeps proposal digests apart from vote digests (a different domain) and
/// from application hashes (which use their own tags).
pub const PROPOSAL_SIGNING_TAG: &str = "pharmalink consensus proposal v1";

/// The 32 bytes a proposer signs. The block enters through its header hash only.
pub fn proposal_signing_digest(
    chain_id: &str,
    height: Height,
    round: Round,
    block_hash: Hash,
    pol_round: Option<Round>,
) -> Hash {
    let fields = ProposalSigningFields {
        tag: PROPOSAL_SIGNING_TAG,
        chain_id,
        height,
        round,
        block_hash,
        pol_round,
    };
    let mut bytes = Vec::with_capacity(128);
    // Writing into a Vec cannot fail.
    if fields.serialize(&mut bytes).is_err() {
        bytes.clear();
    }
    Domain::Application.hash(&bytes)
}

impl Proposal {
    pub fn block_hash(&self) -> Hash {
        self.block.hash()
    }

    pub fn signing_digest(&self, chain_id: &str) -> Hash {
        proposal_signing_digest(
            chain_id,
            self.height,
            self.round,
            self.block_hash(),
            self.pol_round,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub signature: Signature,
}

/// Everything validators say to each other in consensus. Block sync is the host's business.
/// (A proposal carries a whole block, a vote does not; boxing would only add an indirection.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    Proposal(SignedProposal),
    Vote(SignedVote),
}

impl Message {
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.proposal.height,
            Message::Vote(v) => v.vote.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            Message::Proposal(p) => p.proposal.round,
            Message::Vote(v) => v.vote.round,
        }
    }

    pub fn sender(&self) -> ValidatorIndex {
        match self {
            Message::Proposal(p) => p.proposal.proposer_index,
            Message::Vote(v) => v.vote.validator_index,
        }
    }
}

impl Canonical for Message {
    const WHAT: &'static str = "consensus message";
    const BYTES_MAX: usize = MESSAGE_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        let invalid = |field: &'static str, reason: &str| LedgerError::Invalid {
            what: Self::WHAT,
            field,
            reason: reason.into(),
        };
        match self {
            Message::Proposal(p) => {
                p.proposal.block.check()?;
                if p.proposal.height == 0 {
                    return Err(invalid("height", "must be at least 1"));
                }
                if p.proposal
                    .pol_round
                    .is_some_and(|vr| vr >= p.proposal.round)
                {
                    return Err(invalid("pol_round", "must be before the proposal's round"));
                }
                Ok(())
            }
            Message::Vote(v) => {
                if v.vote.height == 0 {
                    return Err(invalid("height", "must be at least 1"));
                }
                Ok(())
            }
        }
    }
}

/// Two different signed messages of one validator for one (height, round, step): proof of a fault.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Evidence {
    DoubleVote {
        first: SignedVote,
        second: SignedVote,
    },
    DoubleProposal {
        first: Box<SignedProposal>,
        second: Box<SignedProposal>,
    },
}

impl Evidence {
    /// (validator, height, round, step) of the offence: one piece of evidence per key is kept.
    pub fn key(&self) -> (ValidatorIndex, Height, Round, Step) {
        match self {
            Evidence::DoubleVote { first, .. } => (
                first.vote.validator_index,
                first.vote.height,
                first.vote.round,
                Step::of_vote(first.vote.kind),
            ),
            Evidence::DoubleProposal { first, .. } => (
                first.proposal.proposer_index,
                first.proposal.height,
                first.proposal.round,
                Step::Propose,
            ),
        }
    }
}
