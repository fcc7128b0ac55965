//! SRTP/SRTCP transforms (owned by the SRTP work item; see the task brief).
