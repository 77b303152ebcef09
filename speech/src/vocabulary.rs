//! What the recogniser listens for. While the engine waits for a yes/no, a
//! phone number, a date or one of a few options, a grammar of just those
//! phrases (classic IVR practice) is far more accurate than dictation.

/// The words a caller may use for what the engine expects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Vocabulary {
    /// Anything (names, addresses, free questions): the general model.
    Dictation,
    /// Yes or no, in the usual ways of saying them.
    YesNo,
    /// A string of digits (phone numbers).
    Digits,
    /// A number said in words.
    Number,
    /// A date, a time or both.
    When,
    /// A person's name from a directory of common names (open dictation
    /// does not hear names on the phone): a name outside it is heard as the
    /// nearest one, which the engine's confirmation catches.
    Name,
    /// One of these options (the objective's `choice` answers).
    Choice(Vec<String>),
}

const DIGITS: &str = "zero | oh | one | two | three | four | five | six | seven | eight | nine";
const TEENS: &str = "ten | eleven | twelve | thirteen | fourteen | fifteen | sixteen | seventeen | eighteen | nineteen";
const TENS: &str = "twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety";
const ORDINALS: &str = "first | second | third | fourth | fifth | sixth | seventh | eighth | ninth | tenth \
    | eleventh | twelfth | thirteenth | fourteenth | fifteenth | sixteenth | seventeenth \
    | eighteenth | nineteenth | twentieth | thirtieth";
const MONTHS: &str = "january | february | march | april | may | june | july | august | september \
    | october | november | december";
/// Common given names in English-speaking countries (all in the en-us
/// dictionary): the directory a name grammar needs, as in classic IVR.
const GIVEN_NAMES: &str = "james | john | robert | michael | william | david | richard | joseph | thomas | charles | \
    christopher | daniel | matthew | anthony | mark | donald | steven | paul | andrew | joshua \
    | kenneth | kevin | brian | george | timothy | ronald | edward | jason | jeffrey | ryan | \
    jacob | gary | nicholas | eric | jonathan | stephen | larry | justin | scott | brandon | \
    benjamin | samuel | gregory | alexander | patrick | frank | raymond | jack | dennis | \
    jerry | tyler | aaron | jose | adam | nathan | henry | peter | zachary | douglas | harold \
    | kyle | noah | gerald | ethan | carl | terry | sean | christian | arthur | austin | \
    lawrence | jesse | dylan | bryan | joe | jordan | billy | bruce | albert | willie | \
    gabriel | logan | alan | juan | wayne | roy | ralph | randy | eugene | vincent | russell | \
    elijah | louis | bobby | philip | johnny | liam | oliver | lucas | mason | leo | max | ben \
    | sam | tom | tim | mary | patricia | jennifer | linda | elizabeth | barbara | susan | \
    jessica | sarah | karen | lisa | nancy | betty | margaret | sandra | ashley | kimberly | \
    emily | donna | michelle | carol | amanda | dorothy | melissa | deborah | stephanie | \
    rebecca | sharon | laura | cynthia | kathleen | amy | angela | shirley | anna | brenda | \
    pamela | emma | nicole | helen | samantha | katherine | christine | debra | rachel | \
    carolyn | janet | catherine | maria | heather | diane | ruth | julie | olivia | joyce | \
    virginia | victoria | kelly | lauren | christina | joan | evelyn | judith | megan | andrea \
    | cheryl | hannah | jacqueline | martha | gloria | teresa | ann | sara | madison | frances \
    | kathryn | janice | jean | abigail | alice | judy | sophia | grace | denise | amber | \
    doris | marilyn | danielle | beverly | isabella | theresa | diana | natalie | brittany | \
    charlotte | marie | kayla | alexis | lori | jane | chloe | ava | mia | lily | zoe | ella | \
    ruby | sophie | kate | lucy | jade";
/// Common family names, likewise.
const FAMILY_NAMES: &str = "smith | johnson | williams | brown | jones | garcia | miller | davis | rodriguez | \
    martinez | hernandez | lopez | gonzalez | wilson | anderson | thomas | taylor | moore | \
    jackson | martin | lee | perez | thompson | white | harris | sanchez | clark | ramirez | \
    lewis | robinson | walker | young | allen | king | wright | scott | torres | nguyen | hill \
    | flores | green | adams | nelson | baker | hall | rivera | campbell | mitchell | carter | \
    roberts | gomez | phillips | evans | turner | diaz | parker | cruz | edwards | collins | \
    reyes | stewart | morris | morales | murphy | cook | rogers | gutierrez | ortiz | morgan | \
    cooper | peterson | bailey | reed | kelly | howard | ramos | kim | cox | ward | richardson \
    | watson | brooks | chavez | wood | james | bennett | gray | mendoza | ruiz | hughes | \
    price | alvarez | castillo | sanders | patel | myers | long | ross | foster | jimenez | \
    citizen | wong | chen | singh | li | wang | zhang | liu | tran | le | pham | murray | ryan \
    | kennedy | o'brien | walsh | byrne | doyle | mcdonald | fraser";
const FILLERS: &str = "um | uh | well | oh";

fn jsgf(rules: &str) -> String {
    format!("#JSGF V1.0;\ngrammar dialtone;\n{rules}\n<filler> = {FILLERS};\n")
}

/// The words of an option as the dictionary spells them: lower case,
/// hyphens and punctuation as spaces.
fn option_words(option: &str) -> String {
    option
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Vocabulary {
    /// The name of its search in a decoder (stable for equal vocabularies).
    pub fn search_name(&self) -> String {
        match self {
            Vocabulary::Dictation => crate::sphinx::DICTATION.to_owned(),
            Vocabulary::YesNo => "yes-no".to_owned(),
            Vocabulary::Digits => "digits".to_owned(),
            Vocabulary::Number => "number".to_owned(),
            Vocabulary::When => "when".to_owned(),
            Vocabulary::Name => "name".to_owned(),
            Vocabulary::Choice(options) => {
                // FNV-1a: a short, stable name for the option set.
                let hash = options
                    .iter()
                    .flat_map(|o| o.bytes().chain([0]))
                    .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                format!("choice-{hash:016x}")
            }
        }
    }

    /// Its JSGF grammar; `None` for dictation (or a choice with no option).
    pub fn grammar(&self) -> Option<String> {
        let rules = match self {
            Vocabulary::Dictation => return None,
            Vocabulary::YesNo => "public <s> = [<filler>] <answer> [please | thanks | thank you];\n\
                 <answer> = yes | yeah | yep | sure | correct | that's right | that is right | right \
                 | no | nope | not really | that's wrong | wrong;"
                .to_owned(),
            Vocabulary::Digits => format!(
                "public <s> = [<filler>] [my number is | it's | it is] <digit>+;\n\
                 <digit> = {DIGITS} | double | triple;"
            ),
            Vocabulary::Number => format!(
                "public <s> = [<filler>] [about | it's | it is] <word>+;\n\
                 <word> = {DIGITS} | {TEENS} | {TENS} | hundred | thousand | and | point;"
            ),
            Vocabulary::When => format!(
                "public <s> = [<filler>] (<date> [[at] <time>] | [at] <time> [[on] <date>]);\n\
                 <date> = [next | this] <weekday> | today | tomorrow | next week \
                 | [on] [the] <ordinal> [of <month>] | <month> [the] <ordinal>;\n\
                 <weekday> = monday | tuesday | wednesday | thursday | friday | saturday | sunday;\n\
                 <month> = {MONTHS};\n<ordinal> = {ORDINALS} | twenty <ordinal-unit> | thirty first;\n\
                 <ordinal-unit> = first | second | third | fourth | fifth | sixth | seventh | eighth | ninth;\n\
                 <time> = <hour> [o'clock | <minute>] [<period>] | noon | midnight \
                 | (half | quarter | <minutes>) (past | to) <hour> [<period>];\n\
                 <hour> = one | two | three | four | five | six | seven | eight | nine | ten | eleven | twelve;\n\
                 <minute> = oh <unit> | {TEENS} | (twenty | thirty | forty | fifty) [<unit>];\n\
                 <minutes> = five | ten | twenty | twenty five;\n\
                 <unit> = one | two | three | four | five | six | seven | eight | nine;\n\
                 <period> = a.m. | p.m. | in the morning | in the afternoon | in the evening | tonight;"
            ),
            Vocabulary::Name => format!(
                "public <s> = [<filler>] [my name is | it's | this is | i'm] <given> [<family>] [<family>];\n\
                 <given> = {GIVEN_NAMES};\n<family> = {FAMILY_NAMES};"
            ),
            Vocabulary::Choice(options) => {
                let alternatives: Vec<String> = options
                    .iter()
                    .map(|o| option_words(o))
                    .filter(|o| !o.is_empty())
                    .collect();
                if alternatives.is_empty() {
                    return None;
                }
                format!(
                    "public <s> = [<filler>] [i'd like | i would like | i want | i need] [a | an | the] \
                     <option> [please];\n<option> = {};",
                    alternatives.join(" | ")
                )
            }
        };
        Some(jsgf(&rules))
    }

    /// What the decoder's words mean in the engine's terms: the dictionary
    /// writes `a.m.`, the capture primitives read `am`.
    pub fn tidy(text: &str) -> String {
        text.split_whitespace()
            .map(|word| match word {
                "a.m." => "am",
                "p.m." => "pm",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_grammar_lists_its_options_in_dictionary_spelling() {
        let choice = Vocabulary::Choice(vec!["Check-up and clean".into(), "Filling".into()]);
        let grammar = choice.grammar().unwrap();
        assert!(
            grammar.contains("<option> = check up and clean | filling;"),
            "{grammar}"
        );
        assert_ne!(
            choice.search_name(),
            Vocabulary::Choice(vec!["Filling".into()]).search_name()
        );
        assert_eq!(Vocabulary::Choice(vec!["--".into()]).grammar(), None);
        assert_eq!(Vocabulary::Dictation.grammar(), None);
    }

    #[test]
    fn the_dictionary_spelling_of_times_is_tidied() {
        assert_eq!(
            Vocabulary::tidy("three  p.m. on friday"),
            "three pm on friday"
        );
    }
}
