//! The two-column table a benchmark prints at the end.

/// Rows of name and figure, printed aligned under a title.
#[derive(Default)]
pub struct Table(Vec<(String, String)>);

impl Table {
    /// Adds a row.
    pub fn row(&mut self, name: &str, value: String) {
        self.0.push((name.to_owned(), value));
    }

    /// Prints the title and the rows, names padded to the longest.
    pub fn print(&self, title: &str) {
        let width = self
            .0
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        println!("\n{title}");
        for (name, value) in &self.0 {
            println!("  {name:<width$}  {value}");
        }
    }
}
