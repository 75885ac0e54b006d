//! Synthetic CRM, address and interaction data.
