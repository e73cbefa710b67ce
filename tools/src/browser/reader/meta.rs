//! The byline and date a page states: its `<meta>` tags, JSON-LD, a byline element, a `<time>`.

use scraper::{ElementRef, Html};

use super::{Analysis, names_author};

/// Byline and date from the page's metadata, when it states them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Who wrote it.
    pub byline: Option<String>,
    /// When it was published, as the page writes it.
    pub date: Option<String>,
}

/// Reads `<meta>` tags and JSON-LD for the byline and date.
pub(in crate::browser) fn metadata(document: &Html, analysis: &Analysis) -> Meta {
    let mut meta = Meta::default();
    let found: Vec<ElementRef<'_>> = analysis
        .head
        .iter()
        .filter_map(|id| document.tree.get(*id).and_then(ElementRef::wrap))
        .collect();
    for m in found.iter().filter(|e| e.value().name() == "meta") {
        let v = m.value();
        let key = v
            .attr("name")
            .or_else(|| v.attr("property"))
            .or_else(|| v.attr("itemprop"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let Some(content) = v.attr("content").map(clean).filter(|c| !c.is_empty()) else {
            continue;
        };
        match key.as_str() {
            "author" | "article:author" | "dc.creator" | "byl" | "parsely-author"
                if meta.byline.is_none() && !content.starts_with("http") =>
            {
                meta.byline = Some(content);
            }
            "article:published_time"
            | "datepublished"
            | "date"
            | "pubdate"
            | "publish-date"
            | "dc.date"
            | "dc.date.issued"
            | "og:published_time"
            | "sailthru.date"
                if meta.date.is_none() =>
            {
                meta.date = Some(content);
            }
            _ => {}
        }
    }
    if meta.byline.is_none() || meta.date.is_none() {
        json_ld(
            found.iter().filter(|e| e.value().name() == "script"),
            &mut meta,
        );
    }
    // Then what the page shows: a byline element, a `<time>`.
    for el in &found {
        let v = el.value();
        if meta.date.is_none() && v.name() == "time" {
            meta.date = v
                .attr("datetime")
                .map(clean)
                .or_else(|| Some(clean(&el.text().collect::<String>())))
                .filter(|d| !d.is_empty());
        }
        if meta.byline.is_none() && v.name() != "meta" && names_author(v) {
            let text = clean(&el.text().collect::<String>());
            let text = text
                .strip_prefix("By ")
                .or_else(|| text.strip_prefix("by "))
                .unwrap_or(&text);
            // The name, not a date or a biography after it.
            let name = text
                .split(['·', '|', '—', '\n'])
                .next()
                .unwrap_or_default()
                .trim();
            if (2..=80).contains(&name.chars().count()) {
                meta.byline = Some(name.to_owned());
            }
        }
    }
    meta
}

fn clean(text: &str) -> String {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(200).collect()
}

/// JSON-LD blocks up to this size are read for metadata.
const MAX_JSON_LD: usize = 200_000;

fn json_ld<'a>(scripts: impl Iterator<Item = &'a ElementRef<'a>>, meta: &mut Meta) {
    for script in scripts.take(20) {
        let text: String = script.text().collect();
        if text.len() > MAX_JSON_LD {
            continue;
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let items: Vec<&serde_json::Value> = match &value {
            serde_json::Value::Array(items) => items.iter().collect(),
            v => v
                .get("@graph")
                .and_then(|g| g.as_array())
                .map_or_else(|| vec![v], |g| g.iter().collect()),
        };
        for item in items {
            if meta.date.is_none() {
                meta.date = item["datePublished"].as_str().map(clean);
            }
            if meta.byline.is_none() {
                let author = &item["author"];
                let author = author.as_array().and_then(|a| a.first()).unwrap_or(author);
                meta.byline = author
                    .as_str()
                    .or_else(|| author["name"].as_str())
                    .map(clean)
                    .filter(|a| !a.is_empty() && !a.starts_with("http"));
            }
        }
    }
}
