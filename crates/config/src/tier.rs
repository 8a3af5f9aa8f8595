use crate::Tier;

/// The text `cordon init --tier T` writes.
pub fn init_template(_tier: Tier) -> String {
    String::new()
}
