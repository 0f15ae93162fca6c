//! A comfy-table as a Markdown table, cell for cell, so a report shows
//! exactly what the terminal does.

use comfy_table::Table;

/// Text for a Markdown table cell: `|` escaped, line breaks as `<br>`.
pub fn cell(s: &str) -> String {
    s.trim().replace('|', "\\|").replace('\n', "<br>")
}

/// A comfy-table as a Markdown table, cell for cell (so the report shows
/// exactly what the terminal does).
pub fn table_markdown(t: &Table) -> String {
    let header: Vec<String> = t
        .header()
        .map(|h| h.cell_iter().map(|c| cell(&c.content())).collect())
        .unwrap_or_default();
    let width = t
        .row_iter()
        .map(|r| r.cell_count())
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let line = |cells: Vec<String>| {
        let mut cells = cells;
        cells.resize(width, String::new());
        format!("| {} |\n", cells.join(" | "))
    };
    let mut s = line(header);
    s.push_str(&format!("|{}\n", "---|".repeat(width)));
    for r in t.row_iter() {
        s.push_str(&line(r.cell_iter().map(|c| cell(&c.content())).collect()));
    }
    s
}
