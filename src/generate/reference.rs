//! Reference data the generator draws from: countries, their cities, streets, names, e-mail
//! domains and telephone number shapes.
//!
//! Every list is ordered and fixed: the generator's output is a function of the seed and of these
//! tables, so reordering an entry changes every generated file.

/// How streets are written in a country.
#[derive(Clone, Copy)]
pub(super) enum StreetStyle {
    /// "12 High Street" (GB, IE, FR).
    NumberFirst,
    /// "Hauptstraße 12" (DE, ES, NL).
    NumberLast,
}

pub(super) struct City {
    pub name: &'static str,
    pub region: &'static str,
    /// `#` is a random digit, `@` a random letter valid in the country's postcodes, anything else
    /// is copied as is.
    pub postcode: &'static str,
    /// Relative share of the country's customers living there.
    pub weight: u32,
    /// Urban areas have more apartments and better fibre coverage.
    pub urban: bool,
}

pub(super) struct Country {
    pub code: &'static str,
    /// Percentage of customers (the shares of all countries add up to 100).
    pub share: u32,
    pub cities: &'static [City],
    pub streets: &'static [&'static str],
    pub street_style: StreetStyle,
    pub first_names: &'static [&'static str],
    pub last_names: &'static [&'static str],
    pub email_domains: &'static [&'static str],
    /// The first digits of mobile numbers, without the trunk prefix.
    pub mobile_prefixes: &'static [&'static str],
    /// Length of the national significant number (what follows the country code).
    pub nsn_len: usize,
    /// Layouts of the national significant number as people write it in the country: `N` is the
    /// next digit of the number, anything else is copied.
    pub national_formats: &'static [&'static str],
    pub international_formats: &'static [&'static str],
    pub postcode_letters: &'static [u8],
}

const GB_POSTCODE_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
const PLAIN_LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTVWXYZ";

const ENGLISH_FIRST: &[&str] = &[
    "Oliver", "Amelia", "George", "Isla", "Harry", "Olivia", "Jack", "Emily", "Charlie", "Sophie",
    "Thomas", "Grace", "James", "Lily", "William", "Jessica", "Daniel", "Chloe", "Samuel", "Ella",
    "Joseph", "Mia", "David", "Sarah", "Michael", "Hannah", "Mohammed", "Aisha", "Ravi", "Priya",
    "Liam", "Niamh", "Sean", "Aoife", "Conor", "Siobhan", "Chiara", "Zoë", "Ryan", "Megan",
];
const ENGLISH_LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "Harris",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Campbell",
    "MacDonald",
    "Hughes",
    "Edwards",
    "Singh",
    "Ahmed",
    "Okafor",
    "Turner",
    "Parker-Jones",
];
const IRISH_FIRST: &[&str] = &[
    "Seán", "Aoife", "Conor", "Niamh", "Ciarán", "Saoirse", "Darragh", "Róisín", "Oisín", "Ciara",
    "Cian", "Sinéad", "Patrick", "Mary", "Eoin", "Orla", "Jack", "Emma", "Fionn", "Grace",
];
const IRISH_LAST: &[&str] = &[
    "Murphy",
    "Kelly",
    "O'Sullivan",
    "Walsh",
    "Smith",
    "O'Brien",
    "Byrne",
    "Ryan",
    "O'Connor",
    "O'Neill",
    "O'Reilly",
    "Doyle",
    "McCarthy",
    "Gallagher",
    "Doherty",
    "Kennedy",
    "Lynch",
    "Murray",
    "Quinn",
    "Moore",
];
const FRENCH_FIRST: &[&str] = &[
    "Jean",
    "Marie",
    "Pierre",
    "Camille",
    "Louis",
    "Léa",
    "Hugo",
    "Chloé",
    "Lucas",
    "Manon",
    "François",
    "Inès",
    "Théo",
    "Julie",
    "Nicolas",
    "Céline",
    "Mathieu",
    "Élodie",
    "Antoine",
    "Sophie",
];
const FRENCH_LAST: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Fournier", "Girard",
];
const GERMAN_FIRST: &[&str] = &[
    "Lukas",
    "Anna",
    "Leon",
    "Lena",
    "Finn",
    "Hannah",
    "Jonas",
    "Lea",
    "Paul",
    "Marie",
    "Felix",
    "Sophie",
    "Jürgen",
    "Katrin",
    "Stefan",
    "Sabine",
    "Maximilian",
    "Jana",
    "Tobias",
    "Julia",
];
const GERMAN_LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
];
const SPANISH_FIRST: &[&str] = &[
    "Lucía",
    "Hugo",
    "María",
    "Martín",
    "Paula",
    "Pablo",
    "Sofía",
    "Daniel",
    "Carmen",
    "Alejandro",
    "Laura",
    "Javier",
    "Elena",
    "José",
    "Ana",
    "Manuel",
    "Marta",
    "Sergio",
    "Nuria",
    "Óscar",
];
const SPANISH_LAST: &[&str] = &[
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Navarro",
    "Torres",
];
const DUTCH_FIRST: &[&str] = &[
    "Daan", "Emma", "Sem", "Julia", "Lucas", "Mila", "Levi", "Tess", "Finn", "Sophie", "Bram",
    "Anouk", "Jeroen", "Femke", "Thijs", "Lotte", "Ruben", "Sanne", "Joost", "Eva",
];
const DUTCH_LAST: &[&str] = &[
    "de Jong",
    "Jansen",
    "de Vries",
    "van den Berg",
    "van Dijk",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
];

// Kept as one row per city: the table reads better than rustfmt's one field per line.
#[rustfmt::skip]
pub(super) static COUNTRIES: &[Country] = &[
    Country {
        code: "GB",
        share: 70,
        cities: &[
            City { name: "London", region: "London", postcode: "SW## #@@", weight: 20, urban: true },
            City { name: "London", region: "London", postcode: "E## #@@", weight: 10, urban: true },
            City { name: "Manchester", region: "North West", postcode: "M## #@@", weight: 6, urban: true },
            City { name: "Birmingham", region: "West Midlands", postcode: "B## #@@", weight: 6, urban: true },
            City { name: "Leeds", region: "Yorkshire and the Humber", postcode: "LS## #@@", weight: 4, urban: true },
            City { name: "Glasgow", region: "Scotland", postcode: "G## #@@", weight: 4, urban: true },
            City { name: "Edinburgh", region: "Scotland", postcode: "EH## #@@", weight: 3, urban: true },
            City { name: "Bristol", region: "South West", postcode: "BS## #@@", weight: 3, urban: true },
            City { name: "Cardiff", region: "Wales", postcode: "CF## #@@", weight: 2, urban: true },
            City { name: "Belfast", region: "Northern Ireland", postcode: "BT## #@@", weight: 2, urban: true },
            City { name: "Newcastle upon Tyne", region: "North East", postcode: "NE# #@@", weight: 2, urban: true },
            City { name: "Nottingham", region: "East Midlands", postcode: "NG# #@@", weight: 2, urban: true },
            City { name: "Brighton", region: "South East", postcode: "BN# #@@", weight: 2, urban: true },
            City { name: "Reading", region: "South East", postcode: "RG# #@@", weight: 2, urban: true },
            City { name: "Norwich", region: "East of England", postcode: "NR# #@@", weight: 1, urban: true },
            City { name: "Kendal", region: "North West", postcode: "LA# #@@", weight: 1, urban: false },
            City { name: "Hexham", region: "North East", postcode: "NE## #@@", weight: 1, urban: false },
            City { name: "Ludlow", region: "West Midlands", postcode: "SY# #@@", weight: 1, urban: false },
            City { name: "Aviemore", region: "Scotland", postcode: "PH## #@@", weight: 1, urban: false },
            City { name: "Brecon", region: "Wales", postcode: "LD# #@@", weight: 1, urban: false },
            City { name: "Truro", region: "South West", postcode: "TR# #@@", weight: 1, urban: false },
            City { name: "Thetford", region: "East of England", postcode: "IP## #@@", weight: 1, urban: false },
            City { name: "Skipton", region: "Yorkshire and the Humber", postcode: "BD## #@@", weight: 1, urban: false },
            City { name: "Oakham", region: "East Midlands", postcode: "LE## #@@", weight: 1, urban: false },
        ],
        streets: &[
            "High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Park Avenue",
            "Queens Road", "Kings Road", "The Green", "Manor Road", "Elm Grove", "Orchard Close",
            "London Road", "Springfield Road", "Chapel Street", "Windsor Drive", "Meadow View",
            "Beech Crescent",
        ],
        street_style: StreetStyle::NumberFirst,
        first_names: ENGLISH_FIRST,
        last_names: ENGLISH_LAST,
        email_domains: &[
            "gmail.com", "gmail.com", "gmail.com", "outlook.com", "hotmail.co.uk", "hotmail.co.uk",
            "yahoo.co.uk", "btinternet.com", "icloud.com", "sky.com", "live.co.uk",
        ],
        mobile_prefixes: &["73", "74", "75", "77", "78", "79"],
        nsn_len: 10,
        national_formats: &["0NNNN NNNNNN", "0NNNN NNNNNN", "0NNNN-NNN-NNN", "(0NNNN) NNNNNN", "0NNNN NNN NNN"],
        international_formats: &["+44 NNNN NNNNNN", "+44 (0)NNNN NNNNNN", "0044 NNNN NNNNNN", "+44NNNNNNNNNN"],
        postcode_letters: GB_POSTCODE_LETTERS,
    },
    Country {
        code: "IE",
        share: 8,
        cities: &[
            City { name: "Dublin", region: "Leinster", postcode: "D0# @#@#", weight: 8, urban: true },
            City { name: "Cork", region: "Munster", postcode: "T12 @#@#", weight: 3, urban: true },
            City { name: "Galway", region: "Connacht", postcode: "H91 @#@#", weight: 2, urban: true },
            City { name: "Limerick", region: "Munster", postcode: "V94 @#@#", weight: 2, urban: true },
            City { name: "Sligo", region: "Connacht", postcode: "F91 @#@#", weight: 1, urban: false },
            City { name: "Letterkenny", region: "Ulster", postcode: "F92 @#@#", weight: 1, urban: false },
        ],
        streets: &[
            "Main Street", "Church Road", "Dublin Road", "Patrick Street", "Castle Street",
            "Bridge Street", "Station Road", "Green Park",
        ],
        street_style: StreetStyle::NumberFirst,
        first_names: IRISH_FIRST,
        last_names: IRISH_LAST,
        email_domains: &["gmail.com", "gmail.com", "outlook.com", "hotmail.com", "eircom.net", "icloud.com"],
        mobile_prefixes: &["83", "85", "86", "87", "89"],
        nsn_len: 9,
        national_formats: &["0NN NNN NNNN", "0NN-NNN-NNNN", "(0NN) NNN NNNN"],
        international_formats: &["+353 NN NNN NNNN", "+353 (0)NN NNNNNNN", "00353 NN NNN NNNN"],
        postcode_letters: PLAIN_LETTERS,
    },
    Country {
        code: "FR",
        share: 7,
        cities: &[
            City { name: "Paris", region: "Île-de-France", postcode: "7501#", weight: 8, urban: true },
            City { name: "Lyon", region: "Auvergne-Rhône-Alpes", postcode: "6900#", weight: 3, urban: true },
            City { name: "Marseille", region: "Provence-Alpes-Côte d'Azur", postcode: "130##", weight: 3, urban: true },
            City { name: "Toulouse", region: "Occitanie", postcode: "310##", weight: 2, urban: true },
            City { name: "Lille", region: "Hauts-de-France", postcode: "590##", weight: 2, urban: true },
            City { name: "Bordeaux", region: "Nouvelle-Aquitaine", postcode: "330##", weight: 2, urban: true },
            City { name: "Nantes", region: "Pays de la Loire", postcode: "440##", weight: 2, urban: true },
            City { name: "Aurillac", region: "Auvergne-Rhône-Alpes", postcode: "15000", weight: 1, urban: false },
            City { name: "Guéret", region: "Nouvelle-Aquitaine", postcode: "23000", weight: 1, urban: false },
        ],
        streets: &[
            "rue de la République", "avenue Victor Hugo", "boulevard Voltaire", "rue Jean Jaurès",
            "place de la Mairie", "rue des Écoles", "chemin des Vignes", "rue Pasteur",
        ],
        street_style: StreetStyle::NumberFirst,
        first_names: FRENCH_FIRST,
        last_names: FRENCH_LAST,
        email_domains: &["gmail.com", "gmail.com", "orange.fr", "free.fr", "laposte.net", "sfr.fr", "hotmail.fr"],
        mobile_prefixes: &["6", "7"],
        nsn_len: 9,
        national_formats: &["0N NN NN NN NN", "0N.NN.NN.NN.NN", "0NNNNNNNNN"],
        international_formats: &["+33 N NN NN NN NN", "+33 (0)N NN NN NN NN", "0033 N NN NN NN NN"],
        postcode_letters: PLAIN_LETTERS,
    },
    Country {
        code: "DE",
        share: 6,
        cities: &[
            City { name: "Berlin", region: "Berlin", postcode: "10###", weight: 5, urban: true },
            City { name: "Hamburg", region: "Hamburg", postcode: "20###", weight: 3, urban: true },
            City { name: "München", region: "Bayern", postcode: "80###", weight: 3, urban: true },
            City { name: "Köln", region: "Nordrhein-Westfalen", postcode: "50###", weight: 2, urban: true },
            City { name: "Frankfurt am Main", region: "Hessen", postcode: "60###", weight: 2, urban: true },
            City { name: "Leipzig", region: "Sachsen", postcode: "04###", weight: 2, urban: true },
            City { name: "Bad Tölz", region: "Bayern", postcode: "8364#", weight: 1, urban: false },
            City { name: "Husum", region: "Schleswig-Holstein", postcode: "2581#", weight: 1, urban: false },
        ],
        streets: &[
            "Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße",
            "Bergstraße", "Lindenweg", "Kirchgasse",
        ],
        street_style: StreetStyle::NumberLast,
        first_names: GERMAN_FIRST,
        last_names: GERMAN_LAST,
        email_domains: &["gmail.com", "gmx.de", "gmx.de", "web.de", "web.de", "t-online.de", "outlook.de"],
        mobile_prefixes: &["151", "160", "170", "171", "176"],
        nsn_len: 11,
        national_formats: &["0NNN NNNNNNNN", "0NNN-NNNNNNNN", "0NNN / NNNN NNNN", "(0NNN) NNNNNNNN"],
        international_formats: &["+49 NNN NNNNNNNN", "+49 (0)NNN NNNN NNNN", "0049 NNN NNNNNNNN"],
        postcode_letters: PLAIN_LETTERS,
    },
    Country {
        code: "ES",
        share: 5,
        cities: &[
            City { name: "Madrid", region: "Comunidad de Madrid", postcode: "280##", weight: 5, urban: true },
            City { name: "Barcelona", region: "Cataluña", postcode: "080##", weight: 4, urban: true },
            City { name: "Valencia", region: "Comunidad Valenciana", postcode: "460##", weight: 2, urban: true },
            City { name: "Sevilla", region: "Andalucía", postcode: "410##", weight: 2, urban: true },
            City { name: "Bilbao", region: "País Vasco", postcode: "480##", weight: 1, urban: true },
            City { name: "Teruel", region: "Aragón", postcode: "44001", weight: 1, urban: false },
        ],
        streets: &[
            "Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle del Sol",
            "Plaza de España", "Calle Nueva", "Paseo del Prado", "Calle San Juan",
        ],
        street_style: StreetStyle::NumberLast,
        first_names: SPANISH_FIRST,
        last_names: SPANISH_LAST,
        email_domains: &["gmail.com", "gmail.com", "hotmail.es", "yahoo.es", "telefonica.net", "outlook.es"],
        mobile_prefixes: &["6", "7"],
        nsn_len: 9,
        national_formats: &["NNN NNN NNN", "NNN-NN-NN-NN", "NNN NN NN NN"],
        international_formats: &["+34 NNN NNN NNN", "0034 NNN NNN NNN", "+34NNNNNNNNN"],
        postcode_letters: PLAIN_LETTERS,
    },
    Country {
        code: "NL",
        share: 4,
        cities: &[
            City { name: "Amsterdam", region: "Noord-Holland", postcode: "10## @@", weight: 4, urban: true },
            City { name: "Rotterdam", region: "Zuid-Holland", postcode: "30## @@", weight: 3, urban: true },
            City { name: "Utrecht", region: "Utrecht", postcode: "35## @@", weight: 2, urban: true },
            City { name: "Eindhoven", region: "Noord-Brabant", postcode: "56## @@", weight: 2, urban: true },
            City { name: "Groningen", region: "Groningen", postcode: "97## @@", weight: 1, urban: true },
            City { name: "Winterswijk", region: "Gelderland", postcode: "710# @@", weight: 1, urban: false },
        ],
        streets: &[
            "Kerkstraat", "Dorpsstraat", "Molenweg", "Schoolstraat", "Stationsweg", "Julianastraat",
            "Nieuwe Gracht", "Beatrixlaan",
        ],
        street_style: StreetStyle::NumberLast,
        first_names: DUTCH_FIRST,
        last_names: DUTCH_LAST,
        email_domains: &["gmail.com", "gmail.com", "hotmail.nl", "outlook.com", "ziggo.nl", "kpnmail.nl"],
        mobile_prefixes: &["6"],
        nsn_len: 9,
        national_formats: &["0N-NNNNNNNN", "0N NNNN NNNN", "0NNNNNNNNN"],
        international_formats: &["+31 N NNNNNNNN", "+31 (0)N NNNN NNNN", "0031 N NNNNNNNN"],
        postcode_letters: PLAIN_LETTERS,
    },
];

/// Phone values as they turn up in a CRM when the field was not validated. None of them is a
/// plain run of digits, so CSV type inference keeps the column a string.
pub(super) const UNPARSEABLE_PHONES: &[&str] = &[
    "n/a",
    "unknown",
    "none",
    "tbc",
    "+44 12",
    "0770-0",
    "call store",
    "-",
    "ask for mobile",
];

/// Lower-case ASCII version of a name, as used in e-mail local parts ("Zoë O'Brien" → "zoe",
/// "obrien"; "Müller" → "mueller").
pub(super) fn email_slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        let folded: &str = match ch {
            'a'..='z' | '0'..='9' | '-' => {
                out.push(ch);
                continue;
            }
            'A'..='Z' => {
                out.push(ch.to_ascii_lowercase());
                continue;
            }
            'á' | 'à' | 'â' | 'Á' | 'À' => "a",
            'ä' | 'Ä' => "ae",
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' => "e",
            'í' | 'ï' | 'î' | 'Í' => "i",
            'ó' | 'ô' | 'Ó' | 'Ò' => "o",
            'ö' | 'Ö' => "oe",
            'ú' | 'û' | 'Ú' => "u",
            'ü' | 'Ü' => "ue",
            'ç' => "c",
            'ñ' => "n",
            'ß' => "ss",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_100() {
        assert_eq!(COUNTRIES.iter().map(|c| c.share).sum::<u32>(), 100);
    }

    #[test]
    fn phone_formats_match_number_length() {
        for country in COUNTRIES {
            for format in country
                .national_formats
                .iter()
                .chain(country.international_formats)
            {
                let digits = format.chars().filter(|&c| c == 'N').count();
                assert_eq!(digits, country.nsn_len, "{}: {format}", country.code);
            }
        }
    }

    #[test]
    fn slugs_are_ascii() {
        assert_eq!(email_slug("Zoë"), "zoe");
        assert_eq!(email_slug("O'Brien"), "obrien");
        assert_eq!(email_slug("Müller"), "mueller");
        assert_eq!(email_slug("de Jong"), "dejong");
        assert_eq!(email_slug("Parker-Jones"), "parker-jones");
    }
}
