//! Google OAuth access tokens for a service account (JWT assertion, cached).
