//! Given/when/then: `given(events).when(party, command).then_expect(events)` or
//! `.then_reject(code)`. `after(party, command)` runs a command through the block engine
//! (nonce, decode, decide, evolve) and insists it is accepted.

use super::fixtures::{self, Party};
use super::*;
use pharmalink_ledger::{Domain, PublicKey};

#[derive(Clone)]
pub struct Scenario {
    pub ledger: MemLedger,
    pub timestamp_ms: u64,
    engine: ContractEngine,
}

pub fn genesis() -> Scenario {
    genesis_with(&fixtures::demo_organizations(), fixtures::DEMO_TIME_MS)
}

pub fn genesis_with(
    organizations: &[crate::iam::GenesisOrganization],
    timestamp_ms: u64,
) -> Scenario {
    let mut ledger = MemLedger::new();
    bootstrap(&mut ledger, organizations, timestamp_ms).unwrap();
    Scenario {
        ledger,
        timestamp_ms,
        engine: ContractEngine::new(fixtures::demo_genesis_root()),
    }
}

/// The demo network, then `events` (each as if logged in its own block).
pub fn given(events: impl IntoIterator<Item = Event>) -> Scenario {
    let mut scenario = genesis();
    for event in events {
        let height = scenario.ledger.height + 1;
        evolve(
            &mut scenario.ledger,
            Position {
                height,
                tx: 0,
                event: 0,
            },
            scenario.timestamp_ms,
            &event,
        );
        scenario.ledger.height = height;
    }
    scenario
}

pub struct Then {
    pub outcome: Result<Vec<Event>, Rejection>,
}

impl Scenario {
    pub fn at_ms(mut self, timestamp_ms: u64) -> Scenario {
        self.timestamp_ms = timestamp_ms;
        self
    }

    pub fn ctx(&self, signer: PublicKey) -> BlockContext {
        BlockContext {
            height: self.ledger.height + 1,
            timestamp_ms: self.timestamp_ms,
            signer,
        }
    }

    /// Executes one command as a one-transaction block; returns its result.
    pub fn execute_key(&mut self, signer: PublicKey, command: &Command) -> TxResult {
        let payload = command.encode();
        let height = self.ledger.height + 1;
        let nonce = next_nonce(&self.ledger, &signer);
        let hash = Domain::Transaction.hash(&[&height.to_le_bytes()[..], &payload].concat());
        let txs = [TxInput {
            hash,
            signer,
            nonce,
            payload: &payload,
        }];
        let effects = self
            .engine
            .execute_block(&self.ledger, height, self.timestamp_ms, &txs);
        self.ledger
            .apply(height, &effects.state_writes, &effects.index_entries);
        effects.results[0].clone()
    }

    pub fn execute(&mut self, party: Party, command: &Command) -> TxResult {
        self.execute_key(party.key(), command)
    }

    /// Runs `command` by `party`; panics unless accepted.
    pub fn after(mut self, party: Party, command: Command) -> Scenario {
        match self.execute(party, &command) {
            TxResult::Accepted => self,
            TxResult::Rejected { code, reason } => {
                panic!("given step {command:?} rejected: {code}: {reason}")
            }
        }
    }

    pub fn when(&self, party: Party, command: Command) -> Then {
        self.when_key(party.key(), command)
    }

    pub fn when_key(&self, signer: PublicKey, command: Command) -> Then {
        // Commands go through their byte encoding, as on the chain.
        let decoded = Command::decode(&command.encode()).unwrap();
        assert_eq!(decoded, command);
        Then {
            outcome: decide(&self.ledger, &decoded, &self.ctx(signer)),
        }
    }
}

impl Then {
    pub fn then_expect(self, expected: Vec<Event>) -> Vec<Event> {
        match self.outcome {
            Ok(events) => {
                assert_eq!(events, expected);
                events
            }
            Err(rejection) => panic!("expected events, got rejection {rejection}"),
        }
    }

    pub fn then_reject(self, code: &str) -> Rejection {
        match self.outcome {
            Ok(events) => panic!("expected rejection {code}, got events {events:?}"),
            Err(rejection) => {
                assert_eq!(rejection.code, code, "rejection {rejection}");
                rejection
            }
        }
    }

    pub fn accepted(self) -> Vec<Event> {
        match self.outcome {
            Ok(events) => events,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }
}
