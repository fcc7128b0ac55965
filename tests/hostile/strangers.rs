//! Strangers and guests against the REST API: joining rooms without an invitation, guessing room
//! names, hammering the admin key, holding seats they never sit in.
