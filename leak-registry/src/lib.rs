//! OCI distribution client for exposure audits.
//!
//! Placeholder: the registry client and audit are not in this commit yet.
