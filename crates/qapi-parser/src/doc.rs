//! Documentation comments: the `##` blocks, split into sections and
//! attached to the definitions they describe.

use std::collections::HashMap;
use std::fmt;

use crate::source::Location;
use crate::LINEAR_LOOKUP;

/// What a section of a documentation block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Untagged paragraphs; the first section of every block is one.
    Plain,
    Member,
    Feature,
    Returns,
    Errors,
    Since,
    Todo,
    /// `Note:` and `Example:` sections of schemas before QEMU 9.1,
    /// accepted only outside strict mode.
    LegacyNote,
    LegacyExample,
}

impl SectionKind {
    pub fn text_required(self) -> bool {
        self != SectionKind::Plain
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SectionKind::Plain => "Plain",
            SectionKind::Member => "Member",
            SectionKind::Feature => "Feature",
            SectionKind::Returns => "Returns",
            SectionKind::Errors => "Errors",
            SectionKind::Since => "Since",
            SectionKind::Todo => "Todo",
            SectionKind::LegacyNote => "Note",
            SectionKind::LegacyExample => "Example",
        })
    }
}

/// One section of a documentation block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// The member or feature described, for those kinds.
    pub name: Option<String>,
    /// The text without its tag, leading and trailing blank lines removed.
    pub text: String,
    /// Where the section starts.
    pub location: Location,
    /// Whether a schema member or feature of this name exists; set while
    /// the schema is checked.
    pub connected: bool,
    /// Added by the checker for a member the block does not describe
    /// (allowed by the `documentation-exceptions` pragma).
    pub stub: bool,
}

/// A `##` documentation block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    /// The line of the opening `##`.
    pub location: Location,
    /// The definition documented; `None` for free-form documentation.
    pub symbol: Option<String>,
    sections: Vec<Section>,
    /// Section indices in textual order (stubs inserted after members).
    order: Vec<usize>,
    args: Vec<usize>,
    features: Vec<usize>,
    /// Sections other than the body, members and features, in order.
    others: Vec<usize>,
    /// Member and feature sections by name, so wide blocks stay linear;
    /// built only once a list outgrows [`LINEAR_LOOKUP`], since most
    /// blocks describe a handful of members and hashing costs more.
    arg_index: HashMap<String, usize>,
    feature_index: HashMap<String, usize>,
}

impl Doc {
    pub(crate) fn new(location: Location, symbol: Option<String>) -> Doc {
        // Room for a typical block, so that pushing sections rarely regrows.
        let mut sections = Vec::with_capacity(8);
        sections.push(Section {
            kind: SectionKind::Plain,
            name: None,
            text: String::new(),
            location,
            connected: false,
            stub: false,
        });
        let mut order = Vec::with_capacity(8);
        order.push(0);
        Doc {
            location,
            symbol,
            sections,
            order,
            args: Vec::new(),
            features: Vec::new(),
            others: Vec::new(),
            arg_index: HashMap::new(),
            feature_index: HashMap::new(),
        }
    }

    /// The first section: the paragraphs before any tag.
    pub fn body(&self) -> &Section {
        &self.sections[0]
    }

    /// Member (or argument) descriptions, documented ones first in
    /// textual order, then stubs for undocumented ones.
    pub fn args(&self) -> impl Iterator<Item = &Section> {
        self.args.iter().map(|&i| &self.sections[i])
    }

    pub fn features(&self) -> impl Iterator<Item = &Section> {
        self.features.iter().map(|&i| &self.sections[i])
    }

    /// Tagged sections and later untagged paragraphs, in textual order.
    pub fn other_sections(&self) -> impl Iterator<Item = &Section> {
        self.others.iter().map(|&i| &self.sections[i])
    }

    /// All sections in textual order.
    pub fn all_sections(&self) -> impl Iterator<Item = &Section> {
        self.order.iter().map(|&i| &self.sections[i])
    }

    pub fn arg(&self, name: &str) -> Option<&Section> {
        self.find(SectionKind::Member, name).map(|i| &self.sections[i])
    }

    pub fn feature(&self, name: &str) -> Option<&Section> {
        self.find(SectionKind::Feature, name).map(|i| &self.sections[i])
    }

    /// Index of the member (or feature) section describing `name`.
    fn find(&self, kind: SectionKind, name: &str) -> Option<usize> {
        let (list, index) = if kind == SectionKind::Member {
            (&self.args, &self.arg_index)
        } else {
            (&self.features, &self.feature_index)
        };
        if list.len() > LINEAR_LOOKUP {
            return index.get(name).copied();
        }
        list.iter()
            .copied()
            .find(|&i| self.sections[i].name.as_deref() == Some(name))
    }

    /// Records section `index` as the description of its member or feature.
    fn register(&mut self, kind: SectionKind, index: usize) {
        let (list, map) = if kind == SectionKind::Member {
            (&mut self.args, &mut self.arg_index)
        } else {
            (&mut self.features, &mut self.feature_index)
        };
        list.push(index);
        if list.len() > LINEAR_LOOKUP {
            let name_of = |i: usize| self.sections[i].name.clone().expect("descriptions are named");
            if map.is_empty() {
                map.extend(list.iter().map(|&i| (name_of(i), i)));
            } else {
                map.insert(name_of(index), index);
            }
        }
    }

    pub fn section(&self, kind: SectionKind) -> Option<&Section> {
        self.other_sections().find(|s| s.kind == kind)
    }

    pub fn has_features(&self) -> bool {
        !self.features.is_empty()
    }

    fn push(&mut self, kind: SectionKind, name: Option<String>, location: Location) -> usize {
        self.sections.push(Section {
            kind,
            name,
            text: String::new(),
            location,
            connected: false,
            stub: false,
        });
        let index = self.sections.len() - 1;
        self.order.push(index);
        index
    }

    pub(crate) fn append_line(&mut self, line: &str) {
        let last = *self.order.last().expect("a block has a body");
        let text = &mut self.sections[last].text;
        if text.capacity() - text.len() <= line.len() {
            // Sections run to a few lines; skip the small regrowths.
            text.reserve((line.len() + 1).max(text.len()).max(128));
        }
        text.push_str(line);
        text.push('\n');
    }

    /// Continues the last section if it is untagged, else starts one.
    pub(crate) fn ensure_untagged_section(&mut self, location: Location) {
        let last = *self.order.last().expect("a block has a body");
        let section = &mut self.sections[last];
        if section.kind == SectionKind::Plain {
            if section.text.is_empty() {
                section.location = location;
            }
            section.text.push('\n');
            return;
        }
        let index = self.push(SectionKind::Plain, None, location);
        self.others.push(index);
    }

    /// Starts a tagged section; an error names a duplicated one.
    pub(crate) fn new_tagged_section(&mut self, location: Location, kind: SectionKind) -> Result<(), String> {
        let unique = matches!(kind, SectionKind::Returns | SectionKind::Errors | SectionKind::Since);
        if unique && self.section(kind).is_some() {
            return Err(format!("duplicated '{kind}' section"));
        }
        let index = self.push(kind, None, location);
        self.others.push(index);
        Ok(())
    }

    pub(crate) fn new_description(&mut self, location: Location, name: &str, kind: SectionKind) -> Result<(), String> {
        if name.is_empty() {
            return Err("invalid parameter name".to_string());
        }
        let existing = if kind == SectionKind::Member {
            self.arg(name)
        } else {
            self.feature(name)
        };
        if existing.is_some() {
            return Err(format!("'{name}' parameter name duplicated"));
        }
        let index = self.push(kind, Some(name.to_string()), location);
        self.register(kind, index);
        Ok(())
    }

    /// Trims every section; a tagged section must have text.
    pub(crate) fn end(&mut self) -> Result<(), (Location, String)> {
        for &i in &self.order {
            let section = &mut self.sections[i];
            // Trimmed in place: no new string per section.
            let text = &mut section.text;
            text.truncate(text.trim_end_matches('\n').len());
            let leading = text.len() - text.trim_start_matches('\n').len();
            text.drain(..leading);
            if section.kind.text_required() && section.text.is_empty() {
                return Err((section.location, format!("text required after '{}:'", section.kind)));
            }
        }
        Ok(())
    }

    /// Marks the description of member `name` as used. Returns false when
    /// there is none.
    pub(crate) fn connect_arg(&mut self, name: &str) -> bool {
        self.connect(name, SectionKind::Member)
    }

    pub(crate) fn connect_feature(&mut self, name: &str) -> bool {
        self.connect(name, SectionKind::Feature)
    }

    fn connect(&mut self, name: &str, kind: SectionKind) -> bool {
        match self.find(kind, name) {
            Some(i) => {
                self.sections[i].connected = true;
                true
            }
            None => false,
        }
    }

    /// Adds an empty, connected description for an undocumented member,
    /// after the member descriptions.
    pub(crate) fn add_stub_arg(&mut self, name: &str) {
        let location = self.location;
        self.sections.push(Section {
            kind: SectionKind::Member,
            name: Some(name.to_string()),
            text: String::new(),
            location,
            connected: true,
            stub: true,
        });
        let index = self.sections.len() - 1;
        self.register(SectionKind::Member, index);
        let mut at = 1;
        while at < self.order.len() && self.sections[self.order[at]].kind == SectionKind::Member {
            at += 1;
        }
        self.order.insert(at.min(self.order.len()), index);
    }

    /// Descriptions of members or features that do not exist, with the
    /// location of the first.
    pub(crate) fn unconnected(&self, kind: SectionKind) -> Option<(Location, Vec<&str>)> {
        let list = if kind == SectionKind::Member {
            &self.args
        } else {
            &self.features
        };
        let bogus: Vec<&Section> = list
            .iter()
            .map(|&i| &self.sections[i])
            .filter(|s| !s.connected)
            .collect();
        let first = bogus.first()?;
        Some((first.location, bogus.iter().filter_map(|s| s.name.as_deref()).collect()))
    }
}
