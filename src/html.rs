//! The self-contained `report.html` of `okring bench` and `okring report`:
//! one file with its style and every plot inline (SVG elements), no
//! scripts, no fonts, nothing fetched, so it opens offline, on a phone and
//! on paper alike. Pure: callers write the file.
//!
//! The body comes from the Markdown the same command writes (report.md),
//! through [`markdown`], which knows exactly the subset those reports use:
//! `#`/`##`/`###` headings, `- ` list items, pipe tables, fenced code
//! blocks, paragraphs, `` `code` `` and `**bold**`.

/// The page: `title`, the style, then `body` (HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// Readable from 320 px up: table cells wrap (numbers do not) and a table
/// still too wide scrolls inside its box, traces wrap, plots shrink to the
/// width; printing shows every column and keeps a plot on one page.
const STYLE: &str = "\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1b1b;background:#fff}\
main{max-width:1100px;margin:0 auto;padding:12px 16px 48px}\
h1{font-size:1.6em;margin:.4em 0}h2{font-size:1.25em;margin:1.4em 0 .5em;border-bottom:1px solid #ddd}\
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;background:#f3f3f3;padding:0 3px;border-radius:3px}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:8px;font-size:.85em}\
.table{overflow-x:auto;margin:.6em 0}table{border-collapse:collapse;font-size:.9em}\
th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top}th{background:#f3f3f3;font-size:.92em}\
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
figure{margin:1em 0}figure svg{width:100%;height:auto;max-width:960px}\
figcaption{font-size:.85em;color:#555}\
@media print{.table{overflow:visible}table{font-size:.75em}figure{break-inside:avoid}}";

/// HTML-escape text (`&`, `<`, `>`, `"`).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline markup of one line: `code` and **bold**, the rest escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
            continue;
        }
        for (j, p) in part.split("**").enumerate() {
            if j % 2 == 1 {
                out.push_str(&format!("<strong>{}</strong>", escape(p)));
            } else {
                out.push_str(&escape(p));
            }
        }
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(str::trim).collect()
}

/// The Markdown subset of okring's reports as HTML.
pub fn markdown(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("```") {
            out.push_str("<pre>");
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                out.push_str(&escape(lines[i]));
                out.push('\n');
                i += 1;
            }
            out.push_str("</pre>\n");
        } else if let Some(h) = line.strip_prefix("### ") {
            out.push_str(&format!("<h3>{}</h3>\n", inline(h)));
        } else if let Some(h) = line.strip_prefix("## ") {
            out.push_str(&format!("<h2>{}</h2>\n", inline(h)));
        } else if let Some(h) = line.strip_prefix("# ") {
            out.push_str(&format!("<h1>{}</h1>\n", inline(h)));
        } else if line.starts_with("- ") {
            out.push_str("<ul>\n");
            while i < lines.len() && lines[i].starts_with("- ") {
                out.push_str(&format!("<li>{}</li>\n", inline(&lines[i][2..])));
                i += 1;
            }
            out.push_str("</ul>\n");
            continue;
        } else if line.starts_with('|') {
            let head = cells(line);
            let right: Vec<bool> = lines
                .get(i + 1)
                .map(|sep| cells(sep).iter().map(|c| c.ends_with(':')).collect())
                .unwrap_or_default();
            out.push_str("<div class=\"table\"><table>\n<thead><tr>");
            for h in &head {
                out.push_str(&format!("<th>{}</th>", inline(h)));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            i += 2;
            while i < lines.len() && lines[i].starts_with('|') {
                out.push_str("<tr>");
                for (k, c) in cells(lines[i]).iter().enumerate() {
                    let class = if right.get(k) == Some(&true) {
                        " class=\"n\""
                    } else {
                        ""
                    };
                    out.push_str(&format!("<td{class}>{}</td>", inline(c)));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</tbody></table></div>\n");
            continue;
        } else if !line.trim().is_empty() {
            let mut para = vec![line.trim()];
            while i + 1 < lines.len()
                && !lines[i + 1].trim().is_empty()
                && !lines[i + 1].starts_with(['#', '-', '|'])
            {
                i += 1;
                para.push(lines[i].trim());
            }
            out.push_str(&format!("<p>{}</p>\n", inline(&para.join(" "))));
        }
        i += 1;
    }
    out
}

/// An SVG file's text as an inline figure with a caption. The XML prolog,
/// if any, is dropped; the `xmlns` attribute is a name, not a request.
pub fn figure(svg: &str, caption: &str) -> String {
    let body = match svg.find("<svg") {
        Some(at) => &svg[at..],
        None => svg,
    };
    format!(
        "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
        body.trim(),
        escape(caption)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_subset_becomes_html() {
        let md = "# okring bench\n\n- command: `okring bench`\n- kernel: 6.18\n\n## Results\n\nLatency: closed\nloop.\n\n| server | req/s |\n|---|---:|\n| uring | 12 <3 |\n\n### fork\n\n```\nconn1\n  read(conn1) = 32 <x>\n```\n";
        let h = markdown(md);
        assert!(h.contains("<h1>okring bench</h1>"), "{h}");
        assert!(
            h.contains("<li>command: <code>okring bench</code></li>"),
            "{h}"
        );
        assert!(h.contains("<h2>Results</h2>"), "{h}");
        assert!(h.contains("<p>Latency: closed loop.</p>"), "{h}");
        assert!(h.contains("<th>server</th><th>req/s</th>"), "{h}");
        assert!(
            h.contains("<td>uring</td><td class=\"n\">12 &lt;3</td>"),
            "{h}"
        );
        assert_eq!(h.matches("<tr>").count(), 2);
        assert!(h.contains("<h3>fork</h3>"), "{h}");
        assert!(
            h.contains("<pre>conn1\n  read(conn1) = 32 &lt;x&gt;\n</pre>"),
            "{h}"
        );
    }

    #[test]
    fn a_page_has_no_scripts_or_outside_references() {
        let p = page(
            "a <b>",
            &figure(
                "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
                "plot",
            ),
        );
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(p.contains("<title>a &lt;b&gt;</title>"));
        assert!(!p.contains("<?xml"));
        assert!(!p.contains("<script") && !p.contains(" src=") && !p.contains("href="));
        assert!(p.contains("name=\"viewport\""));
    }
}
