//! Support for the crash storm (tests/crash_storm.rs): the storage a storm runs on and how it is
//! reached ([`backend`]), the HTTP clients, the crash worker and the ledger of what they were
//! told ([`clients`]), the checks after every kill and restart ([`checks`]), and a TCP proxy
//! that cuts a part upload short ([`proxy`]).

pub mod backend;
pub mod checks;
pub mod clients;
pub mod proxy;
