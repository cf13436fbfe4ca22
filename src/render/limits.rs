//! Keeps every message we send within Slack's limits, so a long Salesforce field or a burst of
//! changes turns into a shortened message instead of an `invalid_blocks` error and a lost alert.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::mrkdwn::escape;

/// Slack's Block Kit and message limits (python-slack-sdk slack_sdk/models/blocks, api.slack.com).
pub mod max {
    /// Blocks in one message.
    pub const BLOCKS: usize = 50;
    /// Header block text.
    pub const HEADER_TEXT: usize = 150;
    /// Section text (also used for context texts and the fallback `text`).
    pub const SECTION_TEXT: usize = 3000;
    /// Fields in one section.
    pub const SECTION_FIELDS: usize = 10;
    /// One section field.
    pub const FIELD_TEXT: usize = 2000;
    /// Elements in one context block.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// Elements in one actions block.
    pub const ACTIONS_ELEMENTS: usize = 25;
    /// Button label.
    pub const BUTTON_TEXT: usize = 75;
    /// Button `url` and `image_url`.
    pub const URL: usize = 3000;
    /// Button `value`.
    pub const BUTTON_VALUE: usize = 2000;
    /// Options in one static select.
    pub const SELECT_OPTIONS: usize = 100;
    /// An option's `text` (and a select's placeholder).
    pub const OPTION_TEXT: usize = 75;
    /// An option's `value`.
    pub const OPTION_VALUE: usize = 150;
    /// `block_id` and `action_id`.
    pub const ID: usize = 255;
    /// Image `alt_text` (and image block `title`, which has the same limit).
    pub const ALT_TEXT: usize = 2000;
    /// Top-level message `text`.
    pub const MESSAGE_TEXT: usize = 40000;
    /// Total characters over all blocks kept under what Slack accepts.
    pub const BLOCKS_TOTAL_TEXT: usize = 12000;
}

const ELLIPSIS: &str = "…";

/// Cuts `s` to at most `max` characters (chars, not bytes), ending with "…" when cut.
///
/// The cut backs off to before an `&…;` entity or a `<…>` control sequence it would split, so a
/// cut text never shows a broken `&am` or turns `<@U123>` into stray markup. Only `max == 0`
/// gives an empty string; callers never ask for that.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    let Some(keep) = max.checked_sub(1) else {
        return Cow::Borrowed("");
    };
    let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let cut = sequence_start(s, cut).unwrap_or(cut);
    Cow::Owned(format!("{}{ELLIPSIS}", &s[..cut]))
}

/// Byte offset of the `<…>` or `&…;` sequence that byte offset `cut` falls inside, if any.
fn sequence_start(s: &str, cut: usize) -> Option<usize> {
    let (head, tail) = s.split_at(cut);
    let link = head.rfind('<').filter(|&lt| {
        !head[lt..].contains('>')
            && tail
                .find(['<', '>'])
                .is_some_and(|i| tail[i..].starts_with('>'))
    });
    let entity = head.rfind('&').filter(|&amp| {
        let name = s[amp + 1..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'#')
            .count();
        let semicolon = amp + 1 + name;
        semicolon >= cut && s.as_bytes().get(semicolon) == Some(&b';')
    });
    link.into_iter().chain(entity).min()
}

/// Brings a rendered message (`{"text": "...", "blocks": [...]}` and optional other keys) within every limit above,
/// in place: long texts cut with an ellipsis; too many fields/elements dropped (the last kept one may note "…and N more" where it is a text);
/// more than 50 blocks → the first 49 kept plus a context block "…and N more not shown"; total text over all blocks above BLOCKS_TOTAL_TEXT →
/// cut the longest texts first until under; a missing or empty `text` → a fallback built from the header/section texts (plain, ≤ 3000);
/// `text` over MESSAGE_TEXT cut. Never produces an empty text object (Slack rejects empty text: use "…" or drop the element).
/// Returns a list of what was changed (for logs and for `sfrelay check` warnings).
///
/// Over-long URLs and ids are dropped rather than cut, since a cut link or id is broken anyway.
pub fn fit(message: &mut Value) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(msg) = message.as_object_mut() else {
        return vec!["message is not a JSON object; left as is".into()];
    };
    if let Some(Value::Array(blocks)) = msg.get_mut("blocks") {
        fit_blocks(blocks, &mut notes);
    }
    match msg.get_mut("text") {
        Some(Value::String(s)) if !s.is_empty() => cut(s, max::MESSAGE_TEXT, "text", &mut notes),
        _ => {
            let text = fallback_text(msg.get("blocks"));
            msg.insert("text".into(), Value::String(text));
            notes.push("text: missing or empty, built from the header and section texts".into());
        }
    }
    notes
}

/// Fits each block, then the block count, then the total text (which depends on both).
fn fit_blocks(blocks: &mut Vec<Value>, notes: &mut Vec<String>) {
    let mut i = 0;
    blocks.retain_mut(|b| {
        let keep = fit_block(b, &format!("blocks[{i}]"), notes);
        i += 1;
        keep
    });
    if blocks.len() > max::BLOCKS {
        let hidden = blocks.len() - (max::BLOCKS - 1);
        notes.push(format!(
            "blocks: {} over {}, kept the first {} and noted {hidden} more not shown",
            blocks.len(),
            max::BLOCKS,
            max::BLOCKS - 1
        ));
        blocks.truncate(max::BLOCKS - 1);
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("…and {hidden} more not shown")}],
        }));
    }
    fit_total_text(blocks, notes);
}

/// Returns false when the block has to go (nothing valid left in it).
fn fit_block(block: &mut Value, path: &str, notes: &mut Vec<String>) -> bool {
    drop_long(block, "block_id", max::ID, path, notes);
    match block.get("type").and_then(Value::as_str) {
        Some("section") => fit_section(block, path, notes),
        Some("header") => cut_text(
            block.get_mut("text"),
            max::HEADER_TEXT,
            &format!("{path}.text"),
            notes,
        ),
        Some("context") => return fit_elements(block, max::CONTEXT_ELEMENTS, path, notes),
        Some("actions") => return fit_elements(block, max::ACTIONS_ELEMENTS, path, notes),
        Some("image") => return fit_image(block, path, notes),
        _ => {} // divider, rich_text, and types we do not render: nothing to cut
    }
    true
}

fn fit_section(block: &mut Value, path: &str, notes: &mut Vec<String>) {
    cut_text(
        block.get_mut("text"),
        max::SECTION_TEXT,
        &format!("{path}.text"),
        notes,
    );
    if let Some(Value::Array(fields)) = block.get_mut("fields") {
        for (i, field) in fields.iter_mut().enumerate() {
            cut_text(
                Some(field),
                max::FIELD_TEXT,
                &format!("{path}.fields[{i}]"),
                notes,
            );
        }
        limit_list(
            fields,
            max::SECTION_FIELDS,
            max::FIELD_TEXT,
            &format!("{path}.fields"),
            notes,
        );
    }
    if let Some(accessory) = block.get_mut("accessory")
        && !fit_element(accessory, &format!("{path}.accessory"), notes)
        && let Some(obj) = block.as_object_mut()
    {
        obj.remove("accessory");
    }
}

/// Context and actions blocks; returns false when no element is left.
fn fit_elements(block: &mut Value, limit: usize, path: &str, notes: &mut Vec<String>) -> bool {
    let Some(Value::Array(elements)) = block.get_mut("elements") else {
        return true;
    };
    let mut i = 0;
    elements.retain_mut(|e| {
        let keep = fit_element(e, &format!("{path}.elements[{i}]"), notes);
        i += 1;
        keep
    });
    limit_list(
        elements,
        limit,
        max::SECTION_TEXT,
        &format!("{path}.elements"),
        notes,
    );
    if elements.is_empty() {
        notes.push(format!("{path}: no elements left, block dropped"));
        return false;
    }
    true
}

/// An accessory or block element; returns false when it has to be dropped.
fn fit_element(element: &mut Value, path: &str, notes: &mut Vec<String>) -> bool {
    match element.get("type").and_then(Value::as_str) {
        Some("plain_text" | "mrkdwn") => cut_text(Some(element), max::SECTION_TEXT, path, notes),
        Some("button") => return fit_button(element, path, notes),
        Some("static_select") => return fit_select(element, path, notes),
        Some("image") => return fit_image(element, path, notes),
        _ => {}
    }
    true
}

fn fit_button(button: &mut Value, path: &str, notes: &mut Vec<String>) -> bool {
    if longer_than(button.get("url"), max::URL) {
        notes.push(format!(
            "{path}: url over {} chars, button dropped",
            max::URL
        ));
        return false;
    }
    cut_text(
        button.get_mut("text"),
        max::BUTTON_TEXT,
        &format!("{path}.text"),
        notes,
    );
    drop_long(button, "value", max::BUTTON_VALUE, path, notes);
    drop_long(button, "action_id", max::ID, path, notes);
    true
}

/// A select keeps at most 100 options, each with a value Slack takes (an option whose value
/// is too long is dropped: cutting it would choose something else); with none left it goes.
fn fit_select(select: &mut Value, path: &str, notes: &mut Vec<String>) -> bool {
    cut_text(
        select.get_mut("placeholder"),
        max::OPTION_TEXT,
        &format!("{path}.placeholder"),
        notes,
    );
    let Some(Value::Array(options)) = select.get_mut("options") else {
        return false;
    };
    let mut i = 0;
    options.retain_mut(|option| {
        let at = format!("{path}.options[{i}]");
        i += 1;
        if longer_than(option.get("value"), max::OPTION_VALUE) {
            notes.push(format!(
                "{at}: value over {} chars, option dropped",
                max::OPTION_VALUE
            ));
            return false;
        }
        cut_text(
            option.get_mut("text"),
            max::OPTION_TEXT,
            &format!("{at}.text"),
            notes,
        );
        true
    });
    if options.len() > max::SELECT_OPTIONS {
        notes.push(format!(
            "{path}.options: {} options, cut to {}",
            options.len(),
            max::SELECT_OPTIONS
        ));
        options.truncate(max::SELECT_OPTIONS);
    }
    if options.is_empty() {
        notes.push(format!("{path}: no options left, select dropped"));
        return false;
    }
    true
}

/// Image blocks and image elements.
fn fit_image(image: &mut Value, path: &str, notes: &mut Vec<String>) -> bool {
    if longer_than(image.get("image_url"), max::URL) {
        notes.push(format!(
            "{path}: image_url over {} chars, image dropped",
            max::URL
        ));
        return false;
    }
    if let Some(Value::String(alt)) = image.get_mut("alt_text") {
        cut(alt, max::ALT_TEXT, &format!("{path}.alt_text"), notes);
    }
    cut_text(
        image.get_mut("title"),
        max::ALT_TEXT,
        &format!("{path}.title"),
        notes,
    );
    true
}

/// Keeps the first `limit` items; the last kept one says how many more there were, if it is a text.
fn limit_list(
    list: &mut Vec<Value>,
    limit: usize,
    text_max: usize,
    path: &str,
    notes: &mut Vec<String>,
) {
    if list.len() <= limit {
        return;
    }
    let hidden = list.len() - limit;
    notes.push(format!(
        "{path}: {} over {limit}, dropped the last {hidden}",
        list.len()
    ));
    list.truncate(limit);
    let Some(last) = list.last_mut() else { return };
    if !matches!(
        last.get("type").and_then(Value::as_str),
        Some("plain_text" | "mrkdwn")
    ) {
        return;
    }
    if let Some(Value::String(s)) = last.get_mut("text") {
        let more = format!("\n…and {hidden} more");
        *s = format!(
            "{}{more}",
            truncate(s, text_max.saturating_sub(more.chars().count()))
        );
    }
}

/// Cuts the `text` of a text object; an empty one becomes "…" since Slack rejects empty text.
fn cut_text(object: Option<&mut Value>, max: usize, path: &str, notes: &mut Vec<String>) {
    let Some(Value::String(s)) = object.and_then(|o| o.get_mut("text")) else {
        return;
    };
    if s.is_empty() {
        *s = ELLIPSIS.into();
        notes.push(format!("{path}: empty text set to \"{ELLIPSIS}\""));
    } else {
        cut(s, max, path, notes);
    }
}

fn cut(s: &mut String, max: usize, path: &str, notes: &mut Vec<String>) {
    let before = s.chars().count();
    if before > max {
        *s = truncate(s, max).into_owned();
        notes.push(format!(
            "{path}: cut from {before} to {} chars",
            s.chars().count()
        ));
    }
}

/// Removes `key` when its string is over `max`: a cut URL, id or value would be broken anyway.
fn drop_long(object: &mut Value, key: &str, max: usize, path: &str, notes: &mut Vec<String>) {
    if longer_than(object.get(key), max)
        && let Some(obj) = object.as_object_mut()
    {
        obj.remove(key);
        notes.push(format!("{path}.{key}: over {max} chars, dropped"));
    }
}

fn longer_than(value: Option<&Value>, max: usize) -> bool {
    value
        .and_then(Value::as_str)
        .is_some_and(|s| s.chars().nth(max).is_some())
}

/// Caps every text at one length, chosen as large as the total allows, so the longest texts
/// lose the most and short ones (labels, names) survive. rich_text counts but is never cut.
fn fit_total_text(blocks: &mut [Value], notes: &mut Vec<String>) {
    let is_rich = |b: &Value| b.get("type").and_then(Value::as_str) == Some("rich_text");
    let (mut fixed, mut lens) = (0, Vec::new());
    for block in blocks.iter_mut() {
        let rich = is_rich(block);
        visit_texts(block, &mut |s| {
            let n = s.chars().count();
            if rich { fixed += n } else { lens.push(n) }
        });
    }
    let total = fixed + lens.iter().sum::<usize>();
    if total <= max::BLOCKS_TOTAL_TEXT {
        return;
    }
    let budget = max::BLOCKS_TOTAL_TEXT.saturating_sub(fixed);
    let longest = lens.iter().copied().max().unwrap_or(1);
    let cap = (1..=longest)
        .rev()
        .find(|&c| lens.iter().map(|&n| n.min(c)).sum::<usize>() <= budget)
        .unwrap_or(1);
    let mut count = 0;
    for block in blocks.iter_mut().filter(|b| !is_rich(b)) {
        visit_texts(block, &mut |s| {
            if s.chars().nth(cap).is_some() {
                *s = truncate(s, cap).into_owned();
                count += 1;
            }
        });
    }
    notes.push(format!(
        "blocks: {total} chars of text over {}, cut the {count} longest texts to at most {cap} chars",
        max::BLOCKS_TOTAL_TEXT
    ));
}

/// Calls `f` on every string under a `text` key: text objects and rich_text elements alike.
fn visit_texts(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                match v {
                    Value::String(s) if key == "text" => f(s),
                    _ => visit_texts(v, f),
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                visit_texts(v, f);
            }
        }
        _ => {}
    }
}

/// Notification text from the header and section texts; plain_text is escaped here because the
/// top-level `text` is read as mrkdwn, where a header's literal `<!channel>` would ping everyone.
fn fallback_text(blocks: Option<&Value>) -> String {
    let parts: Vec<Cow<'_, str>> = blocks
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| {
            matches!(
                b.get("type").and_then(Value::as_str),
                Some("header" | "section")
            )
        })
        .filter_map(|b| {
            let text = b.get("text")?;
            let s = text.get("text")?.as_str().filter(|s| !s.is_empty())?;
            let mrkdwn = text.get("type").and_then(Value::as_str) == Some("mrkdwn");
            Some(if mrkdwn { Cow::Borrowed(s) } else { escape(s) })
        })
        .collect();
    let joined = parts.join("\n");
    match truncate(&joined, max::SECTION_TEXT) {
        t if t.is_empty() => ELLIPSIS.into(),
        t => t.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Value {
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    }

    fn message(blocks: Vec<Value>) -> Value {
        json!({"text": "fallback", "blocks": blocks})
    }

    fn chars(c: &str, n: usize) -> String {
        c.repeat(n)
    }

    #[test]
    fn truncate_keeps_short_strings_borrowed() {
        assert!(matches!(truncate("abc", 3), Cow::Borrowed("abc")));
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("abcd", 1), "…");
        assert_eq!(truncate("abcd", 0), "");
    }

    #[test]
    fn truncate_never_splits_an_entity() {
        // Cut would fall after "&a", "&am", "&amp" or right before ";".
        assert_eq!(truncate("aaaa&amp;bbbb", 6), "aaaa…");
        assert_eq!(truncate("aaaa&amp;bbbb", 9), "aaaa…");
        assert_eq!(truncate("aaaa&amp;bbbb", 10), "aaaa&amp;…");
        assert_eq!(truncate("a &lt;b&gt; c", 5), "a …");
        // A bare "&" is not an entity: cut normally.
        assert_eq!(truncate("a & bbbbbbb", 4), "a &…");
    }

    #[test]
    fn truncate_never_splits_a_control_sequence() {
        assert_eq!(truncate("hi <@U123> there", 6), "hi …");
        assert_eq!(truncate("hi <@U123> there", 10), "hi …");
        assert_eq!(truncate("hi <@U123> there", 11), "hi <@U123>…");
        assert_eq!(
            truncate("see <https://x.example/a?b=1&amp;c=2|label> now", 30),
            "see …"
        );
        // A lone "<" in plain text is not a sequence.
        assert_eq!(truncate("a < b and more", 6), "a < b…");
    }

    #[test]
    fn truncate_cuts_multibyte_on_char_boundaries() {
        assert_eq!(truncate("😀😀😀😀", 3), "😀😀…");
        assert_eq!(truncate("漢字漢字漢字", 4), "漢字漢…");
        assert_eq!(truncate("e\u{301}e\u{301}", 3), "e\u{301}…");
    }

    #[test]
    fn truncate_stays_within_max_at_every_cut_point() {
        let s = "😀&amp;漢<@U1>é&lt;<https://x|ü>&#39;a";
        for max in 1..=s.chars().count() + 1 {
            let t = truncate(s, max);
            assert!(t.chars().count() <= max, "{max}: {t}");
            assert!(s.starts_with(t.trim_end_matches('…')), "{max}: {t}");
        }
    }

    #[test]
    fn long_section_text_is_cut_to_3000() {
        let mut m = message(vec![section(&chars("a", 10_000))]);
        let notes = fit(&mut m);
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            format!("{}…", chars("a", 2999))
        );
        assert_eq!(notes, ["blocks[0].text: cut from 10000 to 3000 chars"]);
    }

    #[test]
    fn multibyte_section_text_is_cut_on_chars() {
        let mut m = message(vec![section(&chars("😀漢", 2000))]);
        fit(&mut m);
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            format!("{}😀…", chars("😀漢", 1499))
        );
    }

    #[test]
    fn eighty_blocks_become_fifty() {
        let blocks = (0..80).map(|i| section(&format!("row {i}"))).collect();
        let mut m = message(blocks);
        let notes = fit(&mut m);
        let blocks = m["blocks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(blocks.len(), 50);
        assert_eq!(blocks[48], section("row 48"));
        assert_eq!(
            blocks[49],
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "…and 31 more not shown"}]})
        );
        assert_eq!(
            notes,
            ["blocks: 80 over 50, kept the first 49 and noted 31 more not shown"]
        );
    }

    #[test]
    fn twelve_fields_become_ten_with_a_note() {
        let fields: Vec<Value> = (0..12)
            .map(|i| json!({"type": "mrkdwn", "text": format!("f{i}")}))
            .collect();
        let mut m = message(vec![json!({"type": "section", "fields": fields})]);
        let notes = fit(&mut m);
        let mut want: Vec<Value> = fields[..10].to_vec();
        want[9] = json!({"type": "mrkdwn", "text": "f9\n…and 2 more"});
        assert_eq!(m["blocks"][0]["fields"], Value::Array(want));
        assert_eq!(notes, ["blocks[0].fields: 12 over 10, dropped the last 2"]);
    }

    #[test]
    fn header_is_cut_to_150() {
        let header =
            json!({"type": "header", "text": {"type": "plain_text", "text": chars("h", 200)}});
        let mut m = message(vec![header]);
        let notes = fit(&mut m);
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            format!("{}…", chars("h", 149))
        );
        assert_eq!(notes, ["blocks[0].text: cut from 200 to 150 chars"]);
    }

    #[test]
    fn button_text_is_cut_to_75() {
        let button = json!({"type": "button", "text": {"type": "plain_text", "text": chars("b", 100)}, "url": "https://x.example"});
        let mut m = message(vec![json!({"type": "actions", "elements": [button]})]);
        let notes = fit(&mut m);
        assert_eq!(
            m["blocks"][0]["elements"][0]["text"]["text"],
            format!("{}…", chars("b", 74))
        );
        assert_eq!(
            notes,
            ["blocks[0].elements[0].text: cut from 100 to 75 chars"]
        );
    }

    #[test]
    fn long_url_button_is_dropped_not_cut() {
        let long = format!("https://x.example/{}", chars("p", 3000));
        let button = |label: &str, url: &str| json!({"type": "button", "text": {"type": "plain_text", "text": label}, "url": url});
        let mut m = message(vec![
            json!({"type": "actions", "elements": [button("Open", &long), button("Ok", "https://x.example")]}),
            json!({"type": "actions", "elements": [button("Only", &long)]}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "s"}, "accessory": button("Acc", &long)}),
        ]);
        let notes = fit(&mut m);
        assert_eq!(
            m["blocks"],
            json!([
                {"type": "actions", "elements": [button("Ok", "https://x.example")]},
                section("s"),
            ])
        );
        assert_eq!(
            notes,
            [
                "blocks[0].elements[0]: url over 3000 chars, button dropped",
                "blocks[1].elements[0]: url over 3000 chars, button dropped",
                "blocks[1]: no elements left, block dropped",
                "blocks[2].accessory: url over 3000 chars, button dropped",
            ]
        );
    }

    #[test]
    fn long_image_url_and_ids_are_dropped() {
        let long = format!("https://x.example/{}", chars("p", 3000));
        let mut m = message(vec![
            json!({"type": "image", "image_url": long, "alt_text": "chart"}),
            json!({"type": "divider", "block_id": chars("i", 256)}),
        ]);
        let notes = fit(&mut m);
        assert_eq!(m["blocks"], json!([{"type": "divider"}]));
        assert_eq!(
            notes,
            [
                "blocks[0]: image_url over 3000 chars, image dropped",
                "blocks[1].block_id: over 255 chars, dropped"
            ]
        );
    }

    #[test]
    fn total_text_is_brought_under_the_limit_longest_first() {
        let mut blocks: Vec<Value> = (0..40).map(|_| section(&chars("x", 2900))).collect();
        blocks.push(section("short"));
        let mut m = message(blocks);
        let notes = fit(&mut m);
        let blocks = m["blocks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        // 40 texts share 12000 - 5 chars: cap 299, the short one untouched.
        for b in &blocks[..40] {
            assert_eq!(b["text"]["text"], format!("{}…", chars("x", 298)));
        }
        assert_eq!(blocks[40], section("short"));
        let mut total = 0;
        for b in m["blocks"].as_array_mut().into_iter().flatten() {
            visit_texts(b, &mut |s| total += s.chars().count());
        }
        assert_eq!(total, 40 * 299 + 5);
        assert!(total <= max::BLOCKS_TOTAL_TEXT);
        assert_eq!(
            notes,
            [
                "blocks: 116005 chars of text over 12000, cut the 40 longest texts to at most 299 chars"
            ]
        );
    }

    #[test]
    fn rich_text_counts_but_is_not_cut() {
        let rich = json!({"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": chars("r", 11_000)}]}]});
        let mut m = message(vec![rich.clone(), section(&chars("s", 2000))]);
        fit(&mut m);
        assert_eq!(m["blocks"][0], rich);
        assert_eq!(
            m["blocks"][1]["text"]["text"],
            format!("{}…", chars("s", 999))
        );
    }

    #[test]
    fn missing_text_falls_back_to_header_and_sections() {
        let mut m = json!({"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Won: A&B <!channel>"}},
            {"type": "divider"},
            section("*Acme* closed &amp; signed"),
        ]});
        let notes = fit(&mut m);
        assert_eq!(
            m["text"],
            "Won: A&amp;B &lt;!channel&gt;\n*Acme* closed &amp; signed"
        );
        assert_eq!(
            notes,
            ["text: missing or empty, built from the header and section texts"]
        );
    }

    #[test]
    fn empty_text_without_blocks_becomes_ellipsis() {
        let mut m = json!({"text": ""});
        fit(&mut m);
        assert_eq!(m, json!({"text": "…"}));
    }

    #[test]
    fn long_message_text_is_cut() {
        let mut m = json!({"text": chars("t", 50_000)});
        let notes = fit(&mut m);
        assert_eq!(m["text"], format!("{}…", chars("t", 39_999)));
        assert_eq!(notes, ["text: cut from 50000 to 40000 chars"]);
    }

    #[test]
    fn message_within_limits_is_unchanged() {
        let original = json!({
            "text": "Opportunity Acme won",
            "channel": "C123",
            "blocks": [
                {"type": "header", "block_id": "h", "text": {"type": "plain_text", "text": "Acme won 🎉"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Amount* &lt;100k&gt; <@U123>"},
                 "fields": [{"type": "mrkdwn", "text": "*Stage*\nClosed Won"}],
                 "accessory": {"type": "image", "image_url": "https://x.example/a.png", "alt_text": "logo"}},
                {"type": "context", "elements": [{"type": "plain_text", "text": "漢字"}, {"type": "image", "image_url": "https://x.example/b.png", "alt_text": "b"}]},
                {"type": "actions", "elements": [{"type": "button", "action_id": "open", "value": "006xx", "text": {"type": "plain_text", "text": "Open"}, "url": "https://x.example/006xx"}]},
                {"type": "image", "image_url": "https://x.example/c.png", "alt_text": "c", "title": {"type": "plain_text", "text": "Chart"}},
                {"type": "divider"},
                {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "hi"}]}]},
            ],
        });
        let mut m = original.clone();
        assert!(fit(&mut m).is_empty());
        assert_eq!(m, original);
    }
}
