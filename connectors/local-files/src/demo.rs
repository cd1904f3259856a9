//! The demo dataset: a deterministic set of Cyoda entities written as NDJSON
//! files, so `tsql sql --demo …` works on a fresh machine with no files.
//!
//! Models: `orders` (nested lines with discounts, a 2-D array of parcel sizes,
//! a polymorphic `priority`, optional fields, revisions with state changes and
//! one deleted order), `customers`, and `products` version 2 (table `products_2`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bump when the generated data changes, so an old copy is not reused.
const DEMO_VERSION: u32 = 1;
/// Orders in the demo.
pub const ORDERS: usize = 3000;
/// Customers in the demo.
pub const CUSTOMERS: usize = 400;
/// Products in the demo.
pub const PRODUCTS: usize = 60;

/// A small deterministic pseudo-random sequence (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A deterministic UUID-shaped id for entity `n` of `model`.
pub fn entity_id(model: u32, n: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        model,
        (n >> 16) & 0xffff,
        n & 0xfff,
        model & 0xfff,
        n
    )
}

/// An ISO instant `base + seconds` from 2024-01-01T00:00:00Z.
pub fn instant(seconds: u64) -> String {
    let t = chrono::DateTime::from_timestamp(1_704_067_200 + seconds as i64, 0).expect("in range");
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn envelope(
    out: &mut String,
    id: &str,
    state: &str,
    created: u64,
    updated: u64,
    deleted: bool,
    data: &str,
) {
    let del = if deleted { ",\"deleted\":true" } else { "" };
    let _ = writeln!(
        out,
        r#"{{"type":"ENTITY","data":{data},"meta":{{"id":"{id}","state":"{state}","creationDate":"{}","lastUpdateTime":"{}"{del}}}}}"#,
        instant(created),
        instant(updated)
    );
}

const CITIES: [&str; 6] = ["Berlin", "Lisbon", "Oslo", "Austin", "Osaka", "Lagos"];
const CHANNELS: [&str; 3] = ["web", "store", "phone"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

fn order(rng: &mut Rng, n: usize, state_notes: &str) -> String {
    let mut d = String::new();
    let _ = write!(
        d,
        r#"{{"orderId":"O-{n:05}","channel":"{}","customer":{{"id":"{}","name":"Customer {}","tier":"{}","address":{{"city":"{}"}}}},"placed":"{}""#,
        rng.pick(&CHANNELS),
        entity_id(2, n % CUSTOMERS),
        n % CUSTOMERS,
        rng.pick(&TIERS),
        rng.pick(&CITIES),
        instant(n as u64 * 600),
    );
    let tags: Vec<String> = (0..rng.below(3))
        .map(|_| format!("\"{}\"", rng.pick(&["rush", "gift", "fragile", "bulk"])))
        .collect();
    let _ = write!(d, r#","tags":[{}]"#, tags.join(","));
    // Polymorphic: a number for most orders, a word for some.
    if n % 7 == 0 {
        let _ = write!(d, r#","priority":"{}""#, rng.pick(&["high", "low"]));
    } else {
        let _ = write!(d, r#","priority":{}"#, rng.below(5));
    }
    if n % 5 == 0 {
        let _ = write!(d, r#","note":"call before delivery {state_notes}""#);
    }
    d.push_str(r#","lines":["#);
    for l in 0..1 + rng.below(4) {
        if l > 0 {
            d.push(',');
        }
        let price = (100 + rng.below(9900)) as f64 / 100.0;
        let _ = write!(
            d,
            r#"{{"sku":"P-{:03}","qty":{},"price":{price}"#,
            rng.below(PRODUCTS as u64),
            1 + rng.below(5)
        );
        if rng.below(3) == 0 {
            let _ = write!(
                d,
                r#","discounts":[{{"code":"D{}","pct":{}}}]"#,
                rng.below(9),
                5 * (1 + rng.below(4))
            );
        }
        d.push('}');
    }
    d.push(']');
    // A 2-D array: parcel sizes in cm.
    let parcels: Vec<String> = (0..1 + rng.below(2))
        .map(|_| {
            format!(
                "[{},{},{}]",
                10 + rng.below(50),
                10 + rng.below(40),
                5 + rng.below(30)
            )
        })
        .collect();
    let _ = write!(d, r#","parcels":[{}]}}"#, parcels.join(","));
    d
}

/// Writes the demo files under `dir` (which must exist and be empty).
pub fn write_demo(dir: &Path) -> std::io::Result<()> {
    let mut rng = Rng::new(7);
    let mut orders = String::new();
    let mut updates = String::new();
    for n in 0..ORDERS {
        let id = entity_id(1, n);
        let created = n as u64 * 600;
        let mut r = Rng::new(1000 + n as u64);
        envelope(
            &mut orders,
            &id,
            "CREATED",
            created,
            created,
            false,
            &order(&mut r, n, ""),
        );
        if n % 3 != 0 {
            let mut r = Rng::new(1000 + n as u64);
            envelope(
                &mut updates,
                &id,
                "SHIPPED",
                created,
                created + 86_400,
                false,
                &order(&mut r, n, "(shipped)"),
            );
        }
        if n % 9 == 1 {
            let mut r = Rng::new(1000 + n as u64);
            envelope(
                &mut updates,
                &id,
                "DELIVERED",
                created,
                created + 3 * 86_400,
                false,
                &order(&mut r, n, "(delivered)"),
            );
        }
        if n == 42 {
            let mut r = Rng::new(1000 + n as u64);
            envelope(
                &mut updates,
                &id,
                "CANCELLED",
                created,
                created + 2 * 86_400,
                true,
                &order(&mut r, n, ""),
            );
        }
    }
    let mut customers = String::new();
    for n in 0..CUSTOMERS {
        let data = format!(
            r#"{{"name":"Customer {n}","email":"c{n}@example.com","since":"20{:02}-{:02}-{:02}","points":{},"callAfter":"{:02}:30:00","vip":{}}}"#,
            10 + rng.below(14),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(100_000),
            8 + rng.below(10),
            n % 10 == 0
        );
        envelope(
            &mut customers,
            &entity_id(2, n),
            "ACTIVE",
            n as u64 * 60,
            n as u64 * 60,
            false,
            &data,
        );
    }
    let mut products = String::new();
    for n in 0..PRODUCTS {
        let data = format!(
            r#"{{"sku":"P-{n:03}","title":"Product {n}","unitCost":{}.{:04},"weightKg":{},"ratings":[{},{},{}]}}"#,
            1 + rng.below(80),
            rng.below(10_000),
            (1 + rng.below(500)) as f64 / 10.0,
            1 + rng.below(5),
            1 + rng.below(5),
            1 + rng.below(5)
        );
        envelope(
            &mut products,
            &entity_id(3, n),
            "LISTED",
            0,
            0,
            false,
            &data,
        );
    }
    for (model, version, file, text) in [
        ("orders", 1, "orders.ndjson", &orders),
        ("orders", 1, "orders-updates.ndjson", &updates),
        ("customers", 1, "customers.ndjson", &customers),
        ("products", 2, "products.ndjson", &products),
    ] {
        let d = dir.join(model).join(version.to_string());
        std::fs::create_dir_all(&d)?;
        std::fs::File::create(d.join(file))?.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// The demo folder, generated on first use in the system's temporary folder.
pub fn demo_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tsql-demo-v{DEMO_VERSION}"));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let tmp =
        std::env::temp_dir().join(format!("tsql-demo-v{DEMO_VERSION}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    write_demo(&tmp)?;
    std::fs::write(tmp.join(".complete"), b"")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race: use its copy.
        Err(_) if dir.join(".complete").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}
