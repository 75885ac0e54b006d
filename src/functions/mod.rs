//! SQL functions segflow registers with DataFusion.
