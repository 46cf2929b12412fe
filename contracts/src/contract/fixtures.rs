//! A small demonstration network (one organization per role, licensed, one key each) and
//! command builders, shared by tests, the benchmark and the node's development genesis.

use super::command::*;
use super::types::*;
use crate::iam::GenesisOrganization;
use pharmalink_ledger::{Hash, PublicKey};

/// 2026-11-26T00:00:00Z.
pub const DEMO_TIME_MS: u64 = 20_783 * 86_400_000;

#[derive(Clone, Copy, Debug)]
pub struct Party {
    pub name: &'static str,
    pub gln: &'static str,
    pub role: Role,
    /// Seed byte of the demo key: `PublicKey([seed; 32])`.
    pub seed: u8,
}

impl Party {
    pub fn gln(&self) -> Gln {
        Gln::parse(self.gln).unwrap_or(Gln([b'0'; 13]))
    }
    pub fn key(&self) -> PublicKey {
        PublicKey([self.seed; 32])
    }
}

pub const MANUFACTURER: Party = Party {
    name: "Acme Pharma",
    gln: "0300010000008",
    role: Role::Manufacturer,
    seed: 1,
};
pub const WHOLESALER: Party = Party {
    name: "Big Wholesale",
    gln: "0300020000005",
    role: Role::Wholesaler,
    seed: 2,
};
pub const DISPENSER: Party = Party {
    name: "Corner Pharmacy",
    gln: "0300030000002",
    role: Role::Dispenser,
    seed: 3,
};
pub const LOGISTICS: Party = Party {
    name: "Swift 3PL",
    gln: "0300040000009",
    role: Role::Logistics,
    seed: 4,
};
pub const REGULATOR: Party = Party {
    name: "State Board",
    gln: "0300050000006",
    role: Role::Regulator,
    seed: 5,
};
pub const WHOLESALER_2: Party = Party {
    name: "Second Wholesale",
    gln: "0300060000003",
    role: Role::Wholesaler,
    seed: 6,
};

pub const PARTIES: [Party; 6] = [
    MANUFACTURER,
    WHOLESALER,
    DISPENSER,
    LOGISTICS,
    REGULATOR,
    WHOLESALER_2,
];

/// The demo product: GTIN 00300010123455, company prefix 0300010 (7 digits).
pub const GTIN: &str = "00300010123455";
pub const PREFIX_LENGTH: u8 = 7;

pub fn gtin() -> Gtin {
    Gtin::parse(GTIN).unwrap_or(Gtin([b'0'; 14]))
}

pub fn licence_for(role: Role) -> Vec<Licence> {
    let kind = match role {
        Role::Manufacturer | Role::Repackager => LicenceKind::FdaRegistration,
        Role::Regulator => return Vec::new(),
        _ => LicenceKind::StateLicence(*b"NJ"),
    };
    vec![Licence {
        kind,
        number: "LIC-0001".into(),
        expires: Date::new(2030, 12, 31),
        revoked: false,
    }]
}

/// Genesis organizations for the demo network; the manufacturer, the first wholesaler and
/// the dispenser run validators.
pub fn demo_organizations() -> Vec<GenesisOrganization> {
    PARTIES
        .iter()
        .map(|p| GenesisOrganization {
            name: p.name.into(),
            gln: p.gln.into(),
            role: p.role.name().into(),
            keys: vec![p.key()],
            address: "1 Main St, Newark NJ".into(),
            licences: licence_for(p.role),
            validator: match p.role {
                Role::Manufacturer | Role::Dispenser => Some((PublicKey([p.seed + 100; 32]), 1)),
                Role::Wholesaler if p.seed == WHOLESALER.seed => {
                    Some((PublicKey([p.seed + 100; 32]), 1))
                }
                _ => None,
            },
        })
        .collect()
}

pub fn product_master() -> ProductMaster {
    ProductMaster {
        gtin: gtin(),
        ndc: "0001-0123-45".into(),
        name: "Examplamab".into(),
        strength: "10 mg".into(),
        dosage_form: "tablet".into(),
        container_size: "30 tablets".into(),
        company_prefix_length: PREFIX_LENGTH,
    }
}

pub fn sgtin(serial: &str) -> Epc {
    Epc::sgtin(&gtin(), serial, PREFIX_LENGTH).unwrap_or_else(|_| Epc::new(serial))
}

/// An SSCC URN with serial reference `n` under the demo company prefix.
pub fn sscc(n: u64) -> Epc {
    let body = format!("0{}{:09}", "0300010", n % 1_000_000_000);
    let mut sum = 0u32;
    for (i, d) in body.bytes().rev().enumerate() {
        let d = u32::from(d - b'0');
        sum += if i % 2 == 0 { d * 3 } else { d };
    }
    let digits = format!("{body}{}", (10 - sum % 10) % 10);
    Epc::sscc(&digits, PREFIX_LENGTH).unwrap_or_else(|_| Epc::new(digits))
}

/// A sealed TI blob stand-in: 64 opaque bytes and a commitment over them (the contract
/// never decrypts; what matters is size and a non-zero commitment).
pub fn sealed_ti(tag: u64) -> Sealed {
    let plaintext = tag.to_le_bytes();
    Sealed {
        ciphertext: vec![0xA5; 64],
        commitment: commit_confidential(&[7; 32], &plaintext),
    }
}

pub fn sale(to: Gln, items: Vec<Epc>, po: &str) -> Command {
    Command::Ship {
        kind: ShipmentKind::Sale,
        to,
        carrier: None,
        items,
        biz_transactions: vec![BizTransaction {
            kind: BizTransactionKind::Po,
            id: po.into(),
        }],
        statement: TransactionStatement { affirmed: true },
        transaction_information: Some(sealed_ti(1)),
    }
}

pub fn receive_all(shipment_id: u64, items: &[Epc]) -> Command {
    Command::Receive {
        shipment_id,
        items: items
            .iter()
            .map(|e| ReceivedItem {
                epc: e.clone(),
                observed_lot: None,
                observed_expiry: None,
            })
            .collect(),
        source: ObservationSource::Scan,
    }
}

pub fn commission(serials: &[&str]) -> Command {
    Command::Commission {
        gtin: gtin(),
        serials: serials.iter().map(|s| s.to_string()).collect(),
        lot: "LOT1".into(),
        expiry: Date::new(2028, 6, 30),
    }
}

/// The demo genesis root (what the node derives from its genesis hash).
pub fn demo_genesis_root() -> Hash {
    pharmalink_ledger::Domain::State.hash(b"pharmalink demo genesis")
}
