//! Deterministic fake data: customers, orders and a small virtual file system.
//!
//! Everything is generated from one `u64` seed with a tiny SplitMix64 generator so that
//! the same seed gives the same rows on every platform and every crate version (a
//! library RNG may change its stream between releases; tests compare exact values).
//! Names and cities come from short lists; e-mail domains are the reserved
//! `example.*` ones, phone numbers are in the fictional 555-01xx range and card numbers
//! are Luhn-valid numbers from the public test ranges.

use rusqlite::{params, Connection};

/// How many customers the demo database holds.
pub(crate) const CUSTOMER_COUNT: u32 = 50;
/// How many orders the demo database holds.
pub(crate) const ORDER_COUNT: u32 = 120;

/// SplitMix64: small, fast, and stable forever (its output is defined by the algorithm).
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the modulo bias is irrelevant for fake data.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // `items` are non-empty constants; index is always in range.
        &items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Sophia",
    "Elijah",
    "Mia",
    "Lucas",
    "Isabella",
    "Mateo",
    "Ava",
    "Levi",
    "Charlotte",
    "Hiroshi",
    "Aisha",
    "Ingrid",
    "Rahul",
    "Chloé",
    "Jonas",
    "Fatima",
    "Diego",
    "Yuki",
    "Marta",
    "Kwame",
    "Elena",
    "Tomasz",
    "Leila",
    "Sven",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Garcia",
    "Müller",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "Nguyen",
    "Patel",
    "Silva",
    "Andersson",
    "Kim",
    "O'Brien",
    "Schmidt",
    "Moreau",
    "Haddad",
    "Novak",
    "Jensen",
    "Costa",
    "Fischer",
    "Lopez",
    "Sato",
    "Mensah",
    "Ivanova",
    "Bianchi",
    "Walsh",
    "Horvat",
    "Larsen",
];

/// (city, country, international dialling code)
const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "US", "+1"),
    ("Portland", "US", "+1"),
    ("Austin", "US", "+1"),
    ("Toronto", "CA", "+1"),
    ("London", "GB", "+44"),
    ("Manchester", "GB", "+44"),
    ("Dublin", "IE", "+353"),
    ("Paris", "FR", "+33"),
    ("Lyon", "FR", "+33"),
    ("Berlin", "DE", "+49"),
    ("Munich", "DE", "+49"),
    ("Amsterdam", "NL", "+31"),
    ("Madrid", "ES", "+34"),
    ("Lisbon", "PT", "+351"),
    ("Milan", "IT", "+39"),
    ("Warsaw", "PL", "+48"),
    ("Stockholm", "SE", "+46"),
    ("Tokyo", "JP", "+81"),
    ("Sydney", "AU", "+61"),
    ("São Paulo", "BR", "+55"),
];

const STREETS: &[&str] = &[
    "Maple Street",
    "Oak Avenue",
    "Station Road",
    "High Street",
    "Church Lane",
    "Mill Road",
    "Park Avenue",
    "Elm Street",
    "Lakeview Drive",
    "Harbour Way",
    "Kingsway",
    "Bridge Street",
    "Cedar Court",
    "Victoria Road",
    "Willow Lane",
];

/// Card prefixes from the public test ranges (Visa 4111/4242/4012, Mastercard 5555/5500/2223).
const CARD_PREFIXES: &[&str] = &["411111", "424242", "401288", "555555", "550000", "222300"];

const ORDER_STATUSES: &[&str] = &[
    "paid",
    "paid",
    "shipped",
    "shipped",
    "delivered",
    "delivered",
    "delivered",
    "pending",
    "refunded",
    "cancelled",
];

/// Appends the Luhn check digit to a string of digits.
pub(crate) fn with_luhn_check_digit(digits: &str) -> String {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // Counting from the right of the *payload*, every first digit is doubled.
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

/// True when a string of digits passes the Luhn check.
#[cfg(test)]
pub(crate) fn luhn_valid(number: &str) -> bool {
    match number.len().checked_sub(1) {
        Some(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => {
            with_luhn_check_digit(&number[..n]) == number
        }
        _ => false,
    }
}

/// `YYYY-MM-DD HH:MM:SS` for a day offset from 2023-01-01 and a second of that day.
fn timestamp(day_offset: i64, second_of_day: u64) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let at = start
        + chrono::TimeDelta::days(day_offset)
        + chrono::TimeDelta::seconds(i64::try_from(second_of_day % 86_400).unwrap_or(0));
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn email_local(first: &str, last: &str) -> String {
    let fold = |s: &str| -> String {
        s.chars()
            .filter_map(|c| match c {
                'é' => Some('e'),
                'ü' => Some('u'),
                'ã' => Some('a'),
                c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    };
    format!("{}.{}", fold(first), fold(last))
}

/// Inserts `CUSTOMER_COUNT` customers; returns each one's creation day offset.
fn insert_customers(conn: &Connection, rng: &mut SplitMix64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "INSERT INTO customers (id, name, email, phone, card_number, address, city, country, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut days = Vec::with_capacity(CUSTOMER_COUNT as usize);
    for id in 1..=CUSTOMER_COUNT {
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let (city, country, dial) = *rng.pick(CITIES);
        let domain = rng.pick(&["example.com", "example.org", "example.net"]);
        let email = format!("{}{id}@{domain}", email_local(first, last));
        // 555-0100..0199 is reserved for fiction; ids are unique below 100.
        let phone = format!("{dial} 555-01{:02}", id % 100);
        let payload = format!("{}{:09}", rng.pick(CARD_PREFIXES), rng.below(1_000_000_000));
        let card = with_luhn_check_digit(&payload);
        let address = format!("{} {}", 1 + rng.below(240), rng.pick(STREETS));
        let day = rng.below(640) as i64;
        days.push(day);
        let created = timestamp(day, rng.next_u64());
        stmt.execute(params![
            id,
            format!("{first} {last}"),
            email,
            phone,
            card,
            address,
            city,
            country,
            created
        ])?;
    }
    Ok(days)
}

fn insert_orders(conn: &Connection, rng: &mut SplitMix64, days: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO orders (id, customer_id, amount_cents, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for id in 1..=ORDER_COUNT {
        let customer = rng.below(u64::from(CUSTOMER_COUNT)) as usize;
        let since = days.get(customer).copied().unwrap_or(0);
        let amount = 499 + rng.below(49_500) as i64;
        let created = timestamp(since + rng.below(200) as i64, rng.next_u64());
        stmt.execute(params![
            id,
            customer as i64 + 1,
            amount,
            rng.pick(ORDER_STATUSES),
            created
        ])?;
    }
    Ok(())
}

/// Files of the virtual file system served by `read_file`. The secrets are fake: the AWS
/// pair is the documented example pair from AWS's own docs.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "/app/config.yaml",
        "# billing-api configuration (production)\n\
service:\n  name: billing-api\n  port: 8080\n  log_level: info\n\
database:\n  host: db-primary.internal.example.com\n  port: 5432\n  name: billing\n  user: billing_app\n  password: \"Tr0ub4dor-and-3-horses\"\n\
aws:\n  region: eu-west-1\n  access_key_id: AKIAIOSFODNN7EXAMPLE\n  secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n  invoices_bucket: billing-invoices-prod\n",
    ),
    (
        "/app/README.md",
        "# billing-api\n\nServes invoices and payment status for the storefront.\n\n\
## Running locally\n\n    make run\n\n\
Configuration lives in `/app/config.yaml`; secrets are injected from `/app/.env` in production.\n\n\
## On-call\n\nPage #billing-oncall. Runbook: https://wiki.example.com/billing/runbook\n",
    ),
    (
        "/app/.env",
        "DATABASE_URL=postgres://billing_app:Tr0ub4dor-and-3-horses@db-primary.internal.example.com:5432/billing\n\
PAYMENTS_API_KEY=demo_live_51Hx9f8e7d6c5b4a3f2e1d0c9b8a7\n\
SESSION_SECRET=3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f\n",
    ),
    (
        "/var/log/billing-api/app.log",
        "2025-11-24T09:12:03Z INFO  invoice 10231 sent to olivia.smith1@example.com\n\
2025-11-24T09:12:07Z WARN  card 4111111111111111 declined (insufficient funds), customer 1\n\
2025-11-24T09:13:44Z INFO  refund 88 processed for order 17\n",
    ),
];

/// Inserts every fake row and file.
pub(crate) fn populate(conn: &Connection, seed: u64) -> rusqlite::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let days = insert_customers(conn, &mut rng)?;
    insert_orders(conn, &mut rng, &days)?;
    let mut stmt = conn.prepare("INSERT INTO files (path, content) VALUES (?1, ?2)")?;
    for (path, content) in FILES {
        stmt.execute(params![path, content])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_check_digit_matches_known_test_numbers() {
        assert_eq!(with_luhn_check_digit("411111111111111"), "4111111111111111");
        assert_eq!(with_luhn_check_digit("555555555555444"), "5555555555554444");
        assert!(luhn_valid("4242424242424242"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("42a2"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn timestamps_count_from_2023() {
        assert_eq!(timestamp(0, 3_661), "2023-01-01 01:01:01");
        assert_eq!(timestamp(59, 0), "2023-03-01 00:00:00");
        assert_eq!(timestamp(365, 86_399), "2024-01-01 23:59:59");
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a: Vec<u64> = (0..4).map(|_| SplitMix64::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(SplitMix64::new(7).next_u64(), SplitMix64::new(8).next_u64());
    }
}
