//! The built-in word lists names are drawn from, and how a name becomes a UPN or a key.

/// Given names, a few with accents so that display names exercise UTF-8 end to end.
pub(crate) const GIVEN_NAMES: &[&str] = &[
    "Aaliyah", "Adam", "Aisha", "Alex", "Alice", "Amara", "Amelia", "Aoife", "Arjun", "Ava", "Ben",
    "Bethan", "Callum", "Chen", "Chloe", "Chidi", "Daniel", "Dylan", "Ella", "Emily", "Emma",
    "Ewan", "Fatima", "Finn", "Freya", "George", "Grace", "Hamza", "Hannah", "Harry", "Isla",
    "Jack", "Jacob", "James", "Jessica", "Joshua", "Kai", "Katie", "Leo", "Lily", "Lucy", "Mei",
    "Mohammed", "Niamh", "Noah", "Oliver", "Olivia", "Oscar", "Priya", "Rhys", "Rosie", "Ruby",
    "Sam", "Sara", "Seren", "Siobhán", "Sophie", "Thomas", "Tomás", "Wei", "William", "Yusuf",
    "Zara", "Zoë",
];

/// Family names, a few with accents, apostrophes or hyphens.
pub(crate) const FAMILY_NAMES: &[&str] = &[
    "Adams",
    "Ahmed",
    "Ali",
    "Allen",
    "Anderson",
    "Bailey",
    "Baker",
    "Begum",
    "Bell",
    "Brown",
    "Campbell",
    "Carter",
    "Chen",
    "Clarke",
    "Collins",
    "Cooper",
    "Davies",
    "Edwards",
    "Evans",
    "Fernández",
    "Fisher",
    "Graham",
    "Green",
    "Griffiths",
    "Hall",
    "Harris",
    "Hughes",
    "Hussain",
    "Jackson",
    "James",
    "Jenkins",
    "Johnson",
    "Jones",
    "Kaur",
    "Kelly",
    "Khan",
    "King",
    "Kowalski",
    "Lee",
    "Lewis",
    "Li",
    "MacDonald",
    "Martin",
    "Mitchell",
    "Moore",
    "Morgan",
    "Morris",
    "Murphy",
    "Murray",
    "Müller",
    "Nguyen",
    "O'Brien",
    "O'Connor",
    "Okafor",
    "Owen",
    "Parker",
    "Patel",
    "Phillips",
    "Price",
    "Roberts",
    "Robinson",
    "Rossi",
    "Scott",
    "Shah",
    "Singh",
    "Smith",
    "Smith-Jones",
    "Stewart",
    "Taylor",
    "Thomas",
    "Thompson",
    "Turner",
    "Walker",
    "Wang",
    "Ward",
    "Watson",
    "White",
    "Williams",
    "Wilson",
    "Wood",
    "Wright",
    "Young",
    "Zhang",
    "Ødegaard",
];

/// Departments: the name and the module code prefix. Forty, the most any size uses.
pub(crate) const DEPARTMENTS: &[(&str, &str)] = &[
    ("Computer Science", "CS"),
    ("Mathematics", "MA"),
    ("Physics", "PH"),
    ("Chemistry", "CH"),
    ("Biology", "BI"),
    ("Biochemistry", "BC"),
    ("Earth Sciences", "ES"),
    ("Geography", "GG"),
    ("History", "HI"),
    ("Philosophy", "PL"),
    ("English Literature", "EN"),
    ("Modern Languages", "ML"),
    ("Linguistics", "LI"),
    ("Music", "MU"),
    ("Drama", "DR"),
    ("Fine Art", "FA"),
    ("Architecture", "AR"),
    ("Economics", "EC"),
    ("Politics & International Relations", "PO"),
    ("Sociology", "SO"),
    ("Psychology", "PS"),
    ("Law", "LA"),
    ("Management", "MN"),
    ("Accounting & Finance", "AF"),
    ("Education", "ED"),
    ("Medicine", "MD"),
    ("Nursing", "NU"),
    ("Pharmacy", "PY"),
    ("Dentistry", "DE"),
    ("Veterinary Science", "VS"),
    ("Civil Engineering", "CE"),
    ("Mechanical Engineering", "ME"),
    ("Electrical Engineering", "EE"),
    ("Chemical Engineering", "CL"),
    ("Materials Science", "MS"),
    ("Statistics", "ST"),
    ("Archaeology", "AC"),
    ("Classics", "CC"),
    ("Theology", "TH"),
    ("Sport Science", "SP"),
];

/// How a module title starts; the subject follows.
pub(crate) const TITLE_OPENINGS: &[&str] = &[
    "Introduction to",
    "Foundations of",
    "Principles of",
    "Advanced",
    "Topics in",
    "Applied",
    "Contemporary",
    "Research Methods in",
    "Professional Practice in",
    "Case Studies in",
];

/// The subject of a module title.
pub(crate) const TITLE_SUBJECTS: &[&str] = &[
    "Analysis",
    "Data",
    "Design",
    "Ethics",
    "Field Work",
    "History",
    "Modelling",
    "Policy",
    "Practice",
    "Project Work",
    "Quantitative Methods",
    "Systems",
    "Theory",
    "Communication",
    "Laboratory Skills",
    "Writing",
];

/// Names of the unmanaged groups a drifted tenant holds; none looks like a list key.
pub(crate) const UNMANAGED_GROUPS: &[&str] = &[
    "Staff Social Club",
    "IT Service Desk",
    "Library News",
    "Students Union",
    "Alumni Relations",
    "Research Office",
    "Graduate School",
    "Estates Notices",
    "Sports Centre",
    "Careers Service",
    "International Office",
    "Wellbeing Team",
    "Open Day Helpers",
    "Governing Council",
    "Health and Safety",
    "Timetabling",
    "Exams Office",
    "Chaplaincy",
    "Music Society",
    "Postgraduate Reps",
];

/// Lower-case ASCII letters and digits of `name`: accents dropped, everything else removed.
/// `Siobhán O'Brien` → `siobhan` and `obrien`.
pub(crate) fn ascii_fold(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        let base = match c {
            'á' | 'à' | 'â' | 'ä' | 'å' | 'Á' | 'Å' => 'a',
            'ç' => 'c',
            'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' | 'Ø' | 'Ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' | 'Ü' => 'u',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => continue,
        };
        folded.push(base);
    }
    folded
}

/// A key made of lower-case ASCII words joined by `-`: `Politics & International Relations`
/// → `politics-international-relations`.
pub(crate) fn slug(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .map(ascii_fold)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `key` is a valid Microsoft 365 mailNickname: 1–64 printable ASCII characters,
/// none of `@()\[]";:<>,` or space.
pub fn is_valid_mail_nickname(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_graphic() && !br#"@()\[]";:<>,"#.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fold_drops_accents_and_punctuation() {
        assert_eq!(ascii_fold("Siobhán"), "siobhan");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Smith-Jones"), "smithjones");
        assert_eq!(ascii_fold("Ødegaard"), "odegaard");
        assert_eq!(ascii_fold("Zoë"), "zoe");
    }

    #[test]
    fn every_built_in_name_folds_to_something() {
        for name in GIVEN_NAMES.iter().chain(FAMILY_NAMES) {
            let folded = ascii_fold(name);
            assert!(
                !folded.is_empty() && folded.bytes().all(|b| b.is_ascii_lowercase()),
                "{name} → {folded}"
            );
        }
    }

    #[test]
    fn slug_joins_words_with_hyphens() {
        assert_eq!(
            slug("Politics & International Relations"),
            "politics-international-relations"
        );
        assert_eq!(slug("Computer Science"), "computer-science");
    }

    #[test]
    fn department_codes_and_slugs_are_unique() {
        let mut codes: Vec<&str> = DEPARTMENTS.iter().map(|d| d.1).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), DEPARTMENTS.len());
        let mut slugs: Vec<String> = DEPARTMENTS.iter().map(|d| slug(d.0)).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), DEPARTMENTS.len());
    }

    #[test]
    fn mail_nickname_rules() {
        assert!(is_valid_mail_nickname("mod-cs10120-2026"));
        assert!(!is_valid_mail_nickname(""));
        assert!(!is_valid_mail_nickname("has space"));
        assert!(!is_valid_mail_nickname("a@b"));
        assert!(!is_valid_mail_nickname("caf\u{e9}"));
        assert!(!is_valid_mail_nickname(&"x".repeat(65)));
    }
}
