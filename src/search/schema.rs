//! The talent document: its fields in the index schema, how a talent
//! becomes a document, and the jieba tokenizer its text is segmented by.

use tantivy::{
    schema::{
        Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
    },
    Index, TantivyDocument,
};

use super::tokenizer;
use crate::{model::Talent, reading::lexicon::Lexicon};

/// The fields of a talent document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    /// Position of the talent in the snapshot's talent table.
    pub(crate) ord: Field,
    pub(crate) specialty: Field,
    /// Corps of each specialty, for the corps fallback.
    pub(crate) specialty_corps: Field,
    pub(crate) tier: Field,
    pub(crate) corps: Field,
    pub(crate) county: Field,
    pub(crate) town: Field,
    pub(crate) division: Field,
    pub(crate) active: Field,
    /// Specialties and skills, segmented by jieba, for BM25.
    pub(crate) text: Field,
    /// The whole talent as JSON: the index is the roster's durable copy.
    pub(crate) doc: Field,
}

impl Fields {
    pub(crate) fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer::JIEBA)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            id: b.add_text_field("id", STRING),
            ord: b.add_u64_field("ord", FAST),
            specialty: b.add_text_field("specialty", STRING),
            specialty_corps: b.add_text_field("specialty_corps", STRING),
            tier: b.add_text_field("tier", STRING),
            corps: b.add_text_field("corps", STRING),
            county: b.add_text_field("county", STRING),
            town: b.add_text_field("town", STRING),
            division: b.add_text_field("division", STRING),
            active: b.add_text_field("active", STRING),
            text: b.add_text_field("text", text_options),
            doc: b.add_text_field("doc", STORED),
        };
        (b.build(), fields)
    }

    /// Looks the fields up in an opened index's schema.
    pub(crate) fn from_schema(schema: &Schema) -> tantivy::Result<Fields> {
        let f = |name: &str| schema.get_field(name);
        Ok(Fields {
            id: f("id")?,
            ord: f("ord")?,
            specialty: f("specialty")?,
            specialty_corps: f("specialty_corps")?,
            tier: f("tier")?,
            corps: f("corps")?,
            county: f("county")?,
            town: f("town")?,
            division: f("division")?,
            active: f("active")?,
            text: f("text")?,
            doc: f("doc")?,
        })
    }

    /// The document for a talent at position `ord`.
    pub(crate) fn document(&self, talent: &Talent, ord: u64, lexicon: &Lexicon) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.id, &talent.id);
        d.add_u64(self.ord, ord);
        for s in &talent.specialties {
            d.add_text(self.specialty, s);
            if let Some(id) = lexicon.subject_id(s) {
                d.add_text(self.specialty_corps, lexicon.subject(id).corps.chinese());
            }
            d.add_text(self.text, s);
        }
        d.add_text(self.text, &talent.skills);
        d.add_text(self.tier, talent.tier.key());
        if let Some(c) = talent.corps {
            d.add_text(self.corps, c.chinese());
        }
        let code = talent.division_code;
        d.add_text(self.county, code.county().to_string());
        d.add_text(self.town, code.town().to_string());
        d.add_text(self.division, code.to_string());
        d.add_text(self.active, if talent.active { "true" } else { "false" });
        d.add_text(
            self.doc,
            serde_json::to_string(talent).expect("talents serialize"),
        );
        d
    }
}

/// Registers the jieba tokenizer on an index (it is not stored with it).
pub(crate) fn register_tokenizer(index: &Index) {
    index.tokenizers().register(
        tokenizer::JIEBA,
        tokenizer::JiebaTokenizer::new(Lexicon::embedded()),
    );
}
