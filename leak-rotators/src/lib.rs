//! Credential rotation for leaked secrets.
//!
//! Placeholder: the rotation engine and rotators are not in this commit yet.
