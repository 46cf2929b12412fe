//! EPCIS (filled in below)
