//! The life of one customer over the window: who they are, where they live, what they hold, and
//! every interaction they have with the business.
//!
//! Each customer is simulated from its own random stream, so a customer's records depend only on
//! the seed, the window and the customer id. Address ids are the one exception: they are numbered
//! in customer order, which the generator always follows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::Datelike;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::calendar::{Offer, SECS_PER_DAY, SECS_PER_HOUR, SendChannel, Window};
use super::reference::{COUNTRIES, City, Country, StreetStyle, UNPARSEABLE_PHONES, email_slug};

/// Products a customer can hold (the `product` column of holdings).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Product {
    InternetDsl,
    InternetFiber,
    Landline,
    Mobile,
    SatelliteTv,
    TvStreaming,
}

impl Product {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Product::InternetDsl => "internet_dsl",
            Product::InternetFiber => "internet_fiber",
            Product::Landline => "landline",
            Product::Mobile => "mobile",
            Product::SatelliteTv => "satellite_tv",
            Product::TvStreaming => "tv_streaming",
        }
    }

    fn is_internet(self) -> bool {
        matches!(self, Product::InternetDsl | Product::InternetFiber)
    }

    /// One-off fee charged when the product is ordered.
    fn fee(self) -> f64 {
        match self {
            Product::InternetDsl => 19.99,
            Product::InternetFiber => 29.99,
            Product::Landline => 14.99,
            Product::Mobile => 9.99,
            Product::SatelliteTv => 49.99,
            Product::TvStreaming => 4.99,
        }
    }

    /// Voluntary cancellations per year (churn aside).
    fn cancel_rate(self) -> f64 {
        match self {
            Product::InternetDsl => 0.05,
            Product::InternetFiber => 0.03,
            Product::Landline => 0.06,
            Product::Mobile => 0.10,
            Product::SatelliteTv => 0.07,
            Product::TvStreaming => 0.20,
        }
    }

    /// Organic orders per year from customers who could take the product (campaigns aside).
    fn organic_rate(self) -> f64 {
        match self {
            Product::InternetDsl => 0.03,
            Product::InternetFiber => 0.05,
            Product::Landline => 0.01,
            Product::Mobile => 0.04,
            Product::SatelliteTv => 0.03,
            Product::TvStreaming => 0.10,
        }
    }

    const ALL: [Product; 6] = [
        Product::InternetDsl,
        Product::InternetFiber,
        Product::Landline,
        Product::Mobile,
        Product::SatelliteTv,
        Product::TvStreaming,
    ];
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum EventKind {
    Purchase,
    WebVisit,
    AppVisit,
    EmailSend,
    EmailOpen,
    EmailClick,
    SmsSend,
    SupportCall,
    Complaint,
    TechnicianVisit,
    Unsubscribe,
}

impl EventKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            EventKind::Purchase => "purchase",
            EventKind::WebVisit => "web_visit",
            EventKind::AppVisit => "app_visit",
            EventKind::EmailSend => "email_send",
            EventKind::EmailOpen => "email_open",
            EventKind::EmailClick => "email_click",
            EventKind::SmsSend => "sms_send",
            EventKind::SupportCall => "support_call",
            EventKind::Complaint => "complaint",
            EventKind::TechnicianVisit => "technician_visit",
            EventKind::Unsubscribe => "unsubscribe",
        }
    }
}

/// One row of interactions; `at` is seconds since the start of the window.
#[derive(Clone, Debug)]
pub(super) struct Event {
    pub at: i64,
    pub kind: EventKind,
    pub channel: Option<&'static str>,
    /// Index into the window's campaigns.
    pub campaign: Option<u32>,
    pub offer: Option<Offer>,
    pub product: Option<&'static str>,
    pub amount: Option<f64>,
    pub outcome: Option<&'static str>,
    pub address_id: Option<i64>,
}

impl Event {
    fn new(at: i64, kind: EventKind, channel: &'static str) -> Event {
        Event {
            at,
            kind,
            channel: Some(channel),
            campaign: None,
            offer: None,
            product: None,
            amount: None,
            outcome: None,
            address_id: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Consent {
    pub email: bool,
    pub sms: bool,
    pub push: bool,
    pub mail: bool,
}

pub(super) struct Address {
    pub address_id: i64,
    pub moved_in: i32,
    pub street: String,
    pub city: &'static City,
    pub postcode: String,
    pub apartment: bool,
    pub fiber_available: bool,
    pub satellite_line_of_sight: bool,
}

pub(super) struct Holding {
    pub product: Product,
    pub started: i32,
    pub ended: Option<i32>,
}

/// Everything generated for one customer. Dates are day numbers relative to the window start.
pub(super) struct CustomerRecord {
    pub customer_id: i64,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub phone: String,
    pub signup: i32,
    pub country: &'static str,
    pub preferred_channel: &'static str,
    /// As the CRM holds it at the end of the window (after any unsubscribes).
    pub consent: Consent,
    /// Ordered by `moved_in`; the last one is where the customer lives at the end of the window.
    pub addresses: Vec<Address>,
    pub holdings: Vec<Holding>,
    /// Ordered by time.
    pub events: Vec<Event>,
}

/// The random stream of one customer: the key comes from the seed, the stream number is the id.
pub(super) fn customer_rng(seed: u64, customer_id: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(b"segflow.");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(customer_id);
    rng
}

/// Something that changes the customer's state at a point in time, processed in time order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Action {
    Order {
        product: Product,
        campaign: Option<u32>,
    },
    Move,
}

/// Hour-of-day weights of customer-initiated activity: quiet nights, an evening peak.
const ACTIVITY_HOURS: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 10, 9, 9, 9, 10, 11, 13, 15, 16, 14, 9, 4,
];

/// Retail items bought outside subscriptions: name, weight outside and inside December, median
/// price and spread (log-normal).
const RETAIL: [(&str, u32, u32, f64, f64); 5] = [
    ("accessory", 40, 30, 18.0, 0.7),
    ("add_on", 25, 15, 10.0, 0.5),
    ("smart_home", 12, 15, 70.0, 0.6),
    ("handset", 15, 22, 420.0, 0.4),
    ("gift_card", 8, 18, 0.0, 0.0),
];

struct Sim<'w> {
    w: &'w Window,
    rng: ChaCha8Rng,
    end: i64,
    signup: i32,
    /// Customer-initiated activity (visits, purchases, opens, calls) happens in
    /// `[active_from, active_until)`; marketing keeps writing to churned customers.
    active_from: i64,
    active_until: i64,
    churn: Option<i32>,
    country: &'static Country,
    consent: Consent,
    app_user: bool,
    p_open: f64,
    p_click: f64,
    addresses: Vec<Address>,
    holdings: Vec<Holding>,
    events: Vec<Event>,
    planned_moves: Vec<i32>,
    /// The address where a technician found satellite TV impossible.
    satellite_refused_at: Option<i64>,
    membership: Vec<Option<bool>>,
    timeline: BinaryHeap<Reverse<(i64, u32, Action)>>,
    timeline_seq: u32,
}

/// Simulates one customer. `next_address_id` is the first free address id; it is advanced past
/// the ids this customer uses.
pub(super) fn simulate(
    w: &Window,
    seed: u64,
    customer_id: u64,
    next_address_id: &mut i64,
) -> CustomerRecord {
    // Long on purpose: one customer's story told in order (each step draws from the
    // customer's random stream, so splitting it would reorder draws and change the data).
    let mut rng = customer_rng(seed, customer_id);

    let country = pick_country(&mut rng);
    let first_name = pick(&mut rng, country.first_names);
    let last_name = pick(&mut rng, country.last_names);
    let email = make_email(&mut rng, country, first_name, last_name);
    let phone = make_phone(&mut rng, country);

    // Tenure is long-tailed: a few customers join during the window, most years before it.
    let signup = if rng.random_bool(0.05) {
        rng.random_range(0..w.days)
    } else {
        let years = (exponential(&mut rng, 4.0) + 0.05).min(25.0);
        -((years * 365.25) as i32) - 1
    };

    let preferred_channel = ["email", "sms", "push", "mail"][weighted(&mut rng, &[50, 20, 15, 15])];
    let app_user = rng.random_bool(if preferred_channel == "push" {
        0.95
    } else {
        0.4
    });
    let prefers = |channel: &str, usual: f64| {
        if preferred_channel == channel {
            0.98
        } else {
            usual
        }
    };
    let consent = Consent {
        email: rng.random_bool(prefers("email", 0.82)),
        sms: rng.random_bool(prefers("sms", 0.55)),
        push: app_user && rng.random_bool(prefers("push", 0.7)),
        mail: rng.random_bool(prefers("mail", 0.7)),
    };

    // Unhappy customers have episodes of calls and complaints, and often leave afterwards.
    let unhappy = rng.random_bool(0.09);
    let first_day = signup.max(0);
    let mut episodes: Vec<(i32, i32)> = Vec::new();
    if unhappy && first_day + 14 < w.days {
        let count = if rng.random_bool(0.3) { 2 } else { 1 };
        for _ in 0..count {
            let from = rng.random_range(first_day..w.days - 7);
            episodes.push((from, from + rng.random_range(7..36)));
        }
        episodes.sort_unstable();
    }
    let churn = if signup < -60 && rng.random_bool(0.05) {
        Some(rng.random_range(signup + 30..0))
    } else if rng.random_bool(if unhappy { 0.35 } else { 0.08 }) {
        let day = match episodes.last() {
            Some(&(_, until)) => until + rng.random_range(7..60),
            None => rng.random_range(first_day..w.days) + 30,
        };
        (day < w.days).then_some(day)
    } else {
        None
    };
    let end = w.end_secs();
    let active_until = churn.map_or(end, |day| i64::from(day.max(0)) * SECS_PER_DAY);

    let mut sim = Sim {
        w,
        rng,
        end,
        signup,
        active_from: i64::from(first_day) * SECS_PER_DAY,
        active_until,
        churn,
        country,
        consent,
        app_user,
        p_open: 0.0,
        p_click: 0.0,
        addresses: Vec::with_capacity(2),
        holdings: Vec::with_capacity(6),
        events: Vec::new(),
        planned_moves: Vec::new(),
        satellite_refused_at: None,
        membership: vec![None; w.campaigns.len()],
        timeline: BinaryHeap::new(),
        timeline_seq: 0,
    };
    // A third of customers never open marketing e-mail.
    if !sim.rng.random_bool(0.32) {
        sim.p_open = sim.rng.random_range(0.08..0.65);
    }
    sim.p_click = sim.rng.random_range(0.04..0.3);

    let moved_in = if sim.rng.random_bool(0.35) {
        signup
    } else {
        signup - sim.rng.random_range(1..3650)
    };
    let first_address = sim.draw_address(None, moved_in, next_address_id);
    sim.addresses.push(first_address);
    sim.initial_holdings();
    sim.plan_moves();
    sim.plan_organic_orders();
    sim.run_timeline(next_address_id);
    sim.everyday_activity(&episodes, unhappy);
    let record_events = sim.finish_events();

    let mut holdings = std::mem::take(&mut sim.holdings);
    for holding in &mut holdings {
        if holding.ended.is_some_and(|day| day >= w.days) {
            holding.ended = None;
        }
    }
    holdings.retain(|h| h.started < w.days && h.ended.is_none_or(|day| day > h.started));
    holdings.sort_by_key(|h| (h.started, h.product));

    CustomerRecord {
        customer_id: customer_id as i64,
        first_name,
        last_name,
        email,
        phone,
        signup,
        country: country.code,
        preferred_channel,
        consent: sim.consent,
        addresses: sim.addresses,
        holdings,
        events: record_events,
    }
}

impl Sim<'_> {
    fn owns(&self, product: Product, day: i32) -> bool {
        self.holdings.iter().any(|h| {
            h.product == product && h.started <= day && h.ended.is_none_or(|end| end > day)
        })
    }

    fn internet_at(&self, day: i32) -> Option<Product> {
        [Product::InternetFiber, Product::InternetDsl]
            .into_iter()
            .find(|&p| self.owns(p, day))
    }

    fn address_at(&self, day: i32) -> &Address {
        self.addresses
            .iter()
            .rev()
            .find(|a| a.moved_in <= day)
            .unwrap_or(&self.addresses[0])
    }

    fn is_active(&self, at: i64) -> bool {
        at >= self.active_from && at < self.active_until
    }

    fn schedule(&mut self, at: i64, action: Action) {
        self.timeline.push(Reverse((at, self.timeline_seq, action)));
        self.timeline_seq += 1;
    }

    fn push(&mut self, event: Event) {
        if event.at >= 0 && event.at < self.end {
            self.events.push(event);
        }
    }

    /// A time on `day` drawn from the hours customers are usually active.
    fn activity_time(&mut self, day: i32) -> i64 {
        let hour = weighted(&mut self.rng, &ACTIVITY_HOURS) as i64;
        i64::from(day) * SECS_PER_DAY + hour * SECS_PER_HOUR + self.rng.random_range(0..3600)
    }

    /// A time on `day` during working hours (technicians, call centre).
    fn working_time(&mut self, day: i32) -> i64 {
        i64::from(day) * SECS_PER_DAY + self.rng.random_range(8 * SECS_PER_HOUR..18 * SECS_PER_HOUR)
    }

    /// End of a holding started on `started`: a voluntary cancellation or churn, whichever comes
    /// first.
    fn holding_end(&mut self, product: Product, started: i32) -> Option<i32> {
        let years = exponential(&mut self.rng, 1.0 / product.cancel_rate());
        let cancelled = started.saturating_add((years * 365.25) as i32 + 1);
        let end = match self.churn {
            Some(churn) => cancelled.min(churn),
            None => cancelled,
        };
        (end < self.w.days).then_some(end)
    }

    fn add_holding(&mut self, product: Product, started: i32) {
        let ended = self.holding_end(product, started);
        self.holdings.push(Holding {
            product,
            started,
            ended,
        });
    }

    fn draw_address(
        &mut self,
        near: Option<&'static City>,
        moved_in: i32,
        next_id: &mut i64,
    ) -> Address {
        let country = self.country;
        let city = match near {
            Some(city) if self.rng.random_bool(0.6) => city,
            _ => {
                let weights: Vec<u32> = country.cities.iter().map(|c| c.weight).collect();
                &country.cities[weighted(&mut self.rng, &weights)]
            }
        };
        let apartment = self.rng.random_bool(if city.urban { 0.45 } else { 0.1 });
        let fiber_available = self.rng.random_bool(match (city.urban, apartment) {
            (true, true) => 0.8,
            (true, false) => 0.65,
            (false, _) => 0.3,
        });
        // Apartments face one way; houses lose the southern sky to tall trees.
        let satellite_line_of_sight = self.rng.random_bool(if apartment { 0.7 } else { 0.86 });
        let number = self.rng.random_range(1..=180);
        let street_name = pick(&mut self.rng, country.streets);
        let flat = self.rng.random_range(1..=24);
        let street = match (country.street_style, apartment) {
            (StreetStyle::NumberFirst, false) => format!("{number} {street_name}"),
            (StreetStyle::NumberFirst, true) if country.code == "FR" => {
                format!("{number} {street_name}, apt {flat}")
            }
            (StreetStyle::NumberFirst, true) => format!("Flat {flat}, {number} {street_name}"),
            (StreetStyle::NumberLast, false) => format!("{street_name} {number}"),
            (StreetStyle::NumberLast, true) => format!("{street_name} {number}-{flat}"),
        };
        let postcode = fill_pattern(&mut self.rng, city.postcode, country.postcode_letters);
        let address_id = *next_id;
        *next_id += 1;
        Address {
            address_id,
            moved_in,
            street,
            city,
            postcode,
            apartment,
            fiber_available,
            satellite_line_of_sight,
        }
    }

    /// Products held before the window (at the first address), or ordered at signup for
    /// customers who join during the window.
    fn initial_holdings(&mut self) {
        // Long on purpose: one customer's story told in order (each step draws from the
        // customer's random stream, so splitting it would reorder draws and change the data).
        let (fiber, line_of_sight) = {
            let a = &self.addresses[0];
            (a.fiber_available, a.satellite_line_of_sight)
        };
        let signup = self.signup;
        let wants_internet = self.rng.random_bool(0.8);
        let wants_fiber = fiber && self.rng.random_bool(0.55);
        let tenure_years = f64::from((-signup).max(0)) / 365.25;
        let wants_landline = self
            .rng
            .random_bool(0.2 + 0.45 * (tenure_years / 10.0).min(1.0));
        let wants_mobile = self.rng.random_bool(0.5);
        let wants_satellite = self.rng.random_bool(0.2);
        let wants_streaming = self.rng.random_bool(0.3);

        if signup >= 0 {
            let at = self.activity_time(signup);
            let order = |sim: &mut Sim, product: Product| {
                sim.schedule(
                    at,
                    Action::Order {
                        product,
                        campaign: None,
                    },
                );
            };
            if wants_internet {
                order(
                    self,
                    if fiber {
                        Product::InternetFiber
                    } else {
                        Product::InternetDsl
                    },
                );
            }
            for (wanted, product) in [
                (wants_landline, Product::Landline),
                (wants_mobile, Product::Mobile),
                (wants_satellite, Product::SatelliteTv),
                (wants_streaming, Product::TvStreaming),
            ] {
                if wanted {
                    order(self, product);
                }
            }
            return;
        }

        // Before the window: started somewhere between signup and the window (or an earlier
        // churn), then possibly cancelled.
        let until = self.churn.map_or(0, |c| c.min(0));
        if until <= signup {
            return;
        }
        let started_between = |sim: &mut Sim, from: i32| {
            let earliest = from.max(signup).min(until - 1);
            sim.rng.random_range(earliest..until)
        };
        if wants_internet {
            if wants_fiber {
                let fiber_from = started_between(self, -6 * 365);
                if fiber_from - signup > 60 && self.rng.random_bool(0.5) {
                    self.holdings.push(Holding {
                        product: Product::InternetDsl,
                        started: signup,
                        ended: Some(fiber_from),
                    });
                }
                self.add_holding(Product::InternetFiber, fiber_from);
            } else {
                let started = signup + self.rng.random_range(0..(until - signup).min(90));
                self.add_holding(Product::InternetDsl, started);
            }
        }
        if wants_landline {
            let started = signup + self.rng.random_range(0..(until - signup).min(60));
            self.add_holding(Product::Landline, started);
        }
        if wants_mobile {
            let started = started_between(self, signup);
            self.add_holding(Product::Mobile, started);
        }
        if wants_satellite && line_of_sight {
            let started = started_between(self, signup);
            self.add_holding(Product::SatelliteTv, started);
        }
        if wants_streaming {
            let started = started_between(self, -3 * 365);
            self.add_holding(Product::TvStreaming, started);
        }
    }

    /// About one customer in ten moves during the window, a few twice.
    fn plan_moves(&mut self) {
        let from = (self.signup + 30).max(0);
        let until = (self.active_until / SECS_PER_DAY) as i32;
        if from + 1 >= until {
            return;
        }
        let r: f64 = self.rng.random();
        let moves = if r < 0.015 {
            2
        } else if r < 0.115 {
            1
        } else {
            0
        };
        for _ in 0..moves {
            let day = self.rng.random_range(from..until);
            if !self.planned_moves.contains(&day) {
                self.plan_move(day);
            }
        }
    }

    fn plan_move(&mut self, day: i32) {
        self.planned_moves.push(day);
        self.schedule(
            i64::from(day) * SECS_PER_DAY + 10 * SECS_PER_HOUR,
            Action::Move,
        );
    }

    fn move_planned_within(&self, from: i32, until: i32) -> bool {
        self.planned_moves.iter().any(|&d| d >= from && d <= until)
    }

    fn plan_organic_orders(&mut self) {
        let mut times = Vec::new();
        for product in Product::ALL {
            times.clear();
            self.arrivals(product.organic_rate() / 365.0, false, &mut times);
            for &at in &times {
                self.schedule(
                    at,
                    Action::Order {
                        product,
                        campaign: None,
                    },
                );
            }
        }
    }

    /// Processes campaign sends and state changes (orders, moves) in time order.
    fn run_timeline(&mut self, next_address_id: &mut i64) {
        let w = self.w;
        let signup_at = i64::from(self.signup) * SECS_PER_DAY;
        for send in &w.sends {
            while let Some(&Reverse((at, _, action))) = self.timeline.peek() {
                if at > send.at {
                    break;
                }
                self.timeline.pop();
                self.act(at, action, next_address_id);
            }
            if send.at < signup_at {
                continue;
            }
            self.receive(send.at, send.campaign, send.channel);
        }
        while let Some(Reverse((at, _, action))) = self.timeline.pop() {
            self.act(at, action, next_address_id);
        }
    }

    fn act(&mut self, at: i64, action: Action, next_address_id: &mut i64) {
        match action {
            Action::Order { product, campaign } => self.order(at, product, campaign),
            Action::Move => self.relocate((at / SECS_PER_DAY) as i32, next_address_id),
        }
    }

    /// Whether the customer is in a campaign's audience, decided at its first send from what the
    /// business knew then (and with the usual targeting mistakes).
    fn in_audience(&mut self, campaign: u32, at: i64) -> bool {
        if let Some(member) = self.membership[campaign as usize] {
            return member;
        }
        let day = (at / SECS_PER_DAY) as i32;
        let churned = at >= self.active_until;
        let offer = self.w.campaigns[campaign as usize].offer;
        let p = if churned {
            if offer == Offer::Winback { 0.85 } else { 0.0 }
        } else {
            match offer {
                Offer::FiberUpgrade if self.owns(Product::InternetFiber, day) => 0.03,
                Offer::FiberUpgrade if self.address_at(day).fiber_available => 0.75,
                Offer::FiberUpgrade => 0.04,
                Offer::SatelliteTv if self.owns(Product::SatelliteTv, day) => 0.02,
                Offer::SatelliteTv => 0.45,
                Offer::MobilePlan if self.owns(Product::Mobile, day) => 0.08,
                Offer::MobilePlan => 0.5,
                Offer::LoyaltyReward if day - self.signup >= 3 * 365 => 0.6,
                Offer::LoyaltyReward => 0.05,
                Offer::Winback => 0.03,
                Offer::LandlineBundle
                    if self.owns(Product::Landline, day) && self.internet_at(day).is_none() =>
                {
                    0.7
                }
                Offer::LandlineBundle => 0.08,
            }
        };
        let member = self.rng.random_bool(p);
        self.membership[campaign as usize] = Some(member);
        member
    }

    /// How much more (or less) likely than usual the customer is to respond to an offer today.
    fn interest(&self, offer: Offer, day: i32) -> f64 {
        let address = self.address_at(day);
        match offer {
            Offer::FiberUpgrade if !address.fiber_available => 0.4,
            Offer::FiberUpgrade if self.owns(Product::InternetDsl, day) => 1.6,
            Offer::SatelliteTv if self.satellite_refused_at == Some(address.address_id) => 0.2,
            Offer::LoyaltyReward => 1.3,
            Offer::LandlineBundle => 0.7,
            _ => 1.0,
        }
    }

    fn receive(&mut self, batch_at: i64, campaign: u32, channel: SendChannel) {
        // Long on purpose: one customer's story told in order (each step draws from the
        // customer's random stream, so splitting it would reorder draws and change the data).
        let allowed = match channel {
            SendChannel::Email => self.consent.email,
            SendChannel::Sms => self.consent.sms,
        };
        if !allowed || !self.in_audience(campaign, batch_at) {
            return;
        }
        let offer = self.w.campaigns[campaign as usize].offer;
        let (at, kind, channel_name) = match channel {
            SendChannel::Email => (
                batch_at + self.rng.random_range(0..3 * SECS_PER_HOUR),
                EventKind::EmailSend,
                "email",
            ),
            SendChannel::Sms => (
                batch_at + self.rng.random_range(0..1800),
                EventKind::SmsSend,
                "sms",
            ),
        };
        if at >= self.end {
            return;
        }
        let tagged = |at: i64, kind: EventKind, channel: &'static str| Event {
            campaign: Some(campaign),
            offer: Some(offer),
            ..Event::new(at, kind, channel)
        };
        self.push(tagged(at, kind, channel_name));
        if !self.is_active(at) {
            return;
        }
        let day = (at / SECS_PER_DAY) as i32;
        let interest = self.interest(offer, day);

        // Being offered satellite TV again after a technician said it cannot work here annoys.
        if offer == Offer::SatelliteTv && interest < 1.0 && self.rng.random_bool(0.02) {
            let complaint_at = at + self.rng.random_range(SECS_PER_HOUR..30 * SECS_PER_HOUR);
            if self.is_active(complaint_at) {
                self.push(Event {
                    offer: Some(offer),
                    ..Event::new(complaint_at, EventKind::Complaint, channel_name)
                });
            }
        }

        match channel {
            SendChannel::Email => {
                if !self.rng.random_bool(self.p_open) {
                    return;
                }
                let delay =
                    (exponential(&mut self.rng, 5.0 * 3600.0) as i64).clamp(60, 72 * SECS_PER_HOUR);
                let opened = at + delay;
                if !self.is_active(opened) {
                    return;
                }
                self.push(tagged(opened, EventKind::EmailOpen, "email"));
                if self.rng.random_bool(0.006) {
                    let unsubscribed = opened + self.rng.random_range(30..600);
                    self.push(tagged(unsubscribed, EventKind::Unsubscribe, "email"));
                    self.consent.email = false;
                    return;
                }
                if !self.rng.random_bool((self.p_click * interest).min(1.0)) {
                    return;
                }
                let clicked = opened + self.rng.random_range(5..1200);
                self.push(tagged(clicked, EventKind::EmailClick, "email"));
                let landed = clicked + self.rng.random_range(2..30);
                self.push(tagged(landed, EventKind::WebVisit, "web"));
                if self.rng.random_bool(conversion_rate(offer)) {
                    let ordered = clicked + self.rng.random_range(120..2 * SECS_PER_DAY);
                    self.convert(ordered, campaign, offer);
                }
            }
            SendChannel::Sms => {
                if self.rng.random_bool(0.004) {
                    let unsubscribed = at + self.rng.random_range(60..3600);
                    self.push(tagged(unsubscribed, EventKind::Unsubscribe, "sms"));
                    self.consent.sms = false;
                    return;
                }
                if self.rng.random_bool((0.003 * interest).min(1.0)) {
                    let ordered = at + self.rng.random_range(600..3 * SECS_PER_DAY);
                    self.convert(ordered, campaign, offer);
                }
            }
        }
    }

    /// A response to a campaign: an order of the offered product, or a discounted purchase for
    /// loyalty and win-back offers.
    fn convert(&mut self, at: i64, campaign: u32, offer: Offer) {
        let product = match offer {
            Offer::FiberUpgrade => Product::InternetFiber,
            Offer::SatelliteTv => Product::SatelliteTv,
            Offer::MobilePlan => Product::Mobile,
            Offer::LandlineBundle => Product::Landline,
            Offer::LoyaltyReward | Offer::Winback => {
                if self.is_active(at) {
                    let day = (at / SECS_PER_DAY) as i32;
                    let (item, amount) = self.retail_item(day);
                    self.push(Event {
                        campaign: Some(campaign),
                        offer: Some(offer),
                        product: Some(item),
                        amount: Some(price((amount * 0.85).max(1.0))),
                        ..Event::new(at, EventKind::Purchase, "web")
                    });
                }
                return;
            }
        };
        self.schedule(
            at,
            Action::Order {
                product,
                campaign: Some(campaign),
            },
        );
    }

    fn purchase_channel(&mut self) -> &'static str {
        let weights = [40, if self.app_user { 20 } else { 0 }, 28, 12];
        ["web", "app", "store", "phone"][weighted(&mut self.rng, &weights)]
    }

    fn order(&mut self, at: i64, product: Product, campaign: Option<u32>) {
        // Long on purpose: one customer's story told in order (each step draws from the
        // customer's random stream, so splitting it would reorder draws and change the data).
        if !self.is_active(at) {
            return;
        }
        let day = (at / SECS_PER_DAY) as i32;
        let (address_id, fiber, line_of_sight) = {
            let a = self.address_at(day);
            (a.address_id, a.fiber_available, a.satellite_line_of_sight)
        };
        // A customer without internet who can get fibre takes fibre.
        let product = match product {
            Product::InternetDsl if fiber => Product::InternetFiber,
            other => other,
        };
        let feasible = match product {
            Product::InternetFiber => fiber && !self.owns(Product::InternetFiber, day),
            Product::InternetDsl => self.internet_at(day).is_none(),
            Product::SatelliteTv => {
                !self.owns(Product::SatelliteTv, day)
                    && self.satellite_refused_at != Some(address_id)
            }
            other => !self.owns(other, day),
        };
        if !feasible {
            return;
        }
        let needs_technician = matches!(
            product,
            Product::InternetDsl | Product::InternetFiber | Product::SatelliteTv
        );
        let channel = if campaign.is_some() {
            "web"
        } else {
            self.purchase_channel()
        };
        let campaign_offer = campaign.map(|c| self.w.campaigns[c as usize].offer);
        let purchase = Event {
            campaign,
            offer: campaign_offer,
            product: Some(product.as_str()),
            amount: Some(product.fee()),
            ..Event::new(at, EventKind::Purchase, channel)
        };
        if !needs_technician {
            self.push(purchase);
            self.add_holding(product, day);
            return;
        }

        let visit_day = day + self.rng.random_range(3..15);
        let visit_at = self.working_time(visit_day);
        if !self.is_active(visit_at) || self.move_planned_within(day, visit_day) {
            return;
        }
        let visit = |outcome: &'static str| Event {
            product: Some(product.as_str()),
            outcome: Some(outcome),
            address_id: Some(address_id),
            ..Event::new(visit_at, EventKind::TechnicianVisit, "field")
        };
        if product == Product::SatelliteTv && !line_of_sight {
            self.push(visit("not_serviceable"));
            self.satellite_refused_at = Some(address_id);
            // Some of these customers move within months (not because of the dish, but they do).
            if self.rng.random_bool(0.35) {
                let move_day = visit_day + self.rng.random_range(14..150);
                if i64::from(move_day) * SECS_PER_DAY < self.active_until
                    && !self.move_planned_within(move_day - 30, move_day + 30)
                {
                    self.plan_move(move_day);
                }
            }
            return;
        }
        self.push(purchase);
        self.push(visit("installed"));
        if product.is_internet() {
            for holding in &mut self.holdings {
                let active =
                    holding.started <= visit_day && holding.ended.is_none_or(|e| e > visit_day);
                if holding.product.is_internet() && active {
                    holding.ended = Some(visit_day);
                }
            }
        }
        self.add_holding(product, visit_day);
    }

    /// Moving house: services tied to the address end and are set up again where possible.
    fn relocate(&mut self, day: i32, next_address_id: &mut i64) {
        let old = self.address_at(day);
        let (old_id, near) = (old.address_id, old.city);
        let new = self.draw_address(Some(near), day, next_address_id);
        let (new_id, fiber, line_of_sight) = (
            new.address_id,
            new.fiber_available,
            new.satellite_line_of_sight,
        );
        self.addresses.push(new);

        let mut had_internet = None;
        let mut had_satellite = false;
        for holding in &mut self.holdings {
            let active = holding.started <= day && holding.ended.is_none_or(|e| e > day);
            if !active {
                continue;
            }
            match holding.product {
                p if p.is_internet() => had_internet = Some(p),
                Product::SatelliteTv => had_satellite = true,
                _ => continue,
            }
            holding.ended = Some(day);
        }

        let visit = |sim: &mut Sim, product: Product, outcome: &'static str| -> Option<i32> {
            let visit_day = day + sim.rng.random_range(1..8);
            let at = sim.working_time(visit_day);
            if !sim.is_active(at) {
                return None;
            }
            sim.push(Event {
                product: Some(product.as_str()),
                outcome: Some(outcome),
                address_id: Some(new_id),
                ..Event::new(at, EventKind::TechnicianVisit, "field")
            });
            Some(visit_day)
        };
        if let Some(previous) = had_internet {
            let product =
                if fiber && (previous == Product::InternetFiber || self.rng.random_bool(0.4)) {
                    Product::InternetFiber
                } else {
                    Product::InternetDsl
                };
            if let Some(visit_day) = visit(self, product, "installed") {
                self.add_holding(product, visit_day);
            }
        }
        if had_satellite {
            if line_of_sight {
                if let Some(visit_day) = visit(self, Product::SatelliteTv, "installed") {
                    self.add_holding(Product::SatelliteTv, visit_day);
                }
            } else if visit(self, Product::SatelliteTv, "not_serviceable").is_some() {
                self.satellite_refused_at = Some(new_id);
            }
        } else if self.satellite_refused_at == Some(old_id)
            && line_of_sight
            && self.rng.random_bool(0.5)
        {
            let order_day = day + self.rng.random_range(14..90);
            let at = self.activity_time(order_day);
            self.schedule(
                at,
                Action::Order {
                    product: Product::SatelliteTv,
                    campaign: None,
                },
            );
        }
    }

    /// Arrival times of a Poisson process with `rate` events per day during the customer's active
    /// period, optionally shaped by the purchase seasonality.
    fn arrivals(&mut self, rate: f64, seasonal: bool, out: &mut Vec<i64>) {
        if rate <= 0.0 || self.active_from >= self.active_until {
            return;
        }
        let peak = if seasonal { self.w.season_max } else { 1.0 };
        let mean_gap = 1.0 / (rate * peak);
        let until_day = self.active_until as f64 / SECS_PER_DAY as f64;
        let mut t = self.active_from as f64 / SECS_PER_DAY as f64;
        loop {
            t += exponential(&mut self.rng, mean_gap);
            if t >= until_day {
                break;
            }
            let day = t as i32;
            if seasonal && !self.rng.random_bool(self.w.season(day) / peak) {
                continue;
            }
            let at = self.activity_time(day);
            if self.is_active(at) {
                out.push(at);
            }
        }
    }

    fn retail_item(&mut self, day: i32) -> (&'static str, f64) {
        let december = self.w.date(day).month() == 12;
        let weights: Vec<u32> = RETAIL
            .iter()
            .map(|r| if december { r.2 } else { r.1 })
            .collect();
        let (name, _, _, median, spread) = RETAIL[weighted(&mut self.rng, &weights)];
        let amount = if name == "gift_card" {
            *pick(&mut self.rng, &[20.0, 25.0, 50.0, 100.0])
        } else {
            let gift_bump = if december { 1.2 } else { 1.0 };
            price(log_normal(&mut self.rng, median * gift_bump, spread))
        };
        (name, amount)
    }

    /// Visits, retail purchases, support, complaints, repairs and the odd opt-out.
    fn everyday_activity(&mut self, episodes: &[(i32, i32)], unhappy: bool) {
        // Long on purpose: one customer's story told in order (each step draws from the
        // customer's random stream, so splitting it would reorder draws and change the data).
        let mut times = Vec::new();

        // Browsing.
        let web_rate = log_normal(&mut self.rng, 2.0, 0.9) / 30.4;
        self.arrivals(web_rate, false, &mut times);
        for &at in &times {
            self.push(Event::new(at, EventKind::WebVisit, "web"));
        }
        if self.app_user {
            times.clear();
            let app_rate = log_normal(&mut self.rng, 4.0, 0.8) / 30.4;
            self.arrivals(app_rate, false, &mut times);
            for &at in &times {
                self.push(Event::new(at, EventKind::AppVisit, "app"));
            }
        }

        // Retail purchases: most customers buy once or twice a year, a few all the time.
        let r: f64 = self.rng.random();
        let per_year = if r < 0.18 {
            0.15
        } else if r < 0.98 {
            log_normal(&mut self.rng, 1.6, 0.9)
        } else {
            self.rng.random_range(12.0..40.0)
        };
        times.clear();
        self.arrivals(per_year / 365.0, true, &mut times);
        for &at in &times {
            let day = (at / SECS_PER_DAY) as i32;
            let channel = self.purchase_channel();
            if channel == "web" || channel == "app" {
                let kind = if channel == "web" {
                    EventKind::WebVisit
                } else {
                    EventKind::AppVisit
                };
                let browsed = at - self.rng.random_range(120..2400);
                if self.is_active(browsed) {
                    self.push(Event::new(browsed, kind, channel));
                }
            }
            let (item, amount) = self.retail_item(day);
            self.push(Event {
                product: Some(item),
                amount: Some(amount),
                ..Event::new(at, EventKind::Purchase, channel)
            });
        }

        // Support: occasional calls, clustered into episodes for unhappy customers.
        times.clear();
        self.arrivals(if unhappy { 1.5 } else { 0.6 } / 365.0, false, &mut times);
        for &at in &times {
            let resolved = self.rng.random_bool(if unhappy { 0.6 } else { 0.82 });
            self.support_call(at, resolved);
        }
        for &(from, until) in episodes {
            let from_at = (i64::from(from) * SECS_PER_DAY).max(self.active_from);
            let until_at = (i64::from(until) * SECS_PER_DAY).min(self.active_until);
            if from_at >= until_at {
                continue;
            }
            let span = until_at - from_at;
            let calls = 2 + self.rng.random_range(0..((span / SECS_PER_DAY) / 4 + 1));
            for _ in 0..calls {
                let day = ((from_at + self.rng.random_range(0..span)) / SECS_PER_DAY) as i32;
                let at = self.working_time(day);
                let resolved = self.rng.random_bool(0.35);
                self.support_call(at, resolved);
            }
            let complaints =
                1 + usize::from(self.rng.random_bool(0.5)) + usize::from(self.rng.random_bool(0.2));
            for _ in 0..complaints {
                let at = from_at + self.rng.random_range(0..span);
                let channel = ["phone", "email", "store"][weighted(&mut self.rng, &[6, 3, 1])];
                if self.is_active(at) {
                    self.push(Event::new(at, EventKind::Complaint, channel));
                }
            }
        }
        times.clear();
        self.arrivals(0.04 / 365.0, false, &mut times);
        for &at in &times {
            let channel = ["phone", "email"][weighted(&mut self.rng, &[2, 1])];
            self.push(Event::new(at, EventKind::Complaint, channel));
        }

        // Faults: a call, then a technician.
        times.clear();
        self.arrivals(0.15 / 365.0, false, &mut times);
        for &at in &times {
            let day = (at / SECS_PER_DAY) as i32;
            let Some(product) = self.internet_at(day) else {
                continue;
            };
            let address_id = self.address_at(day).address_id;
            let called = at - self.rng.random_range(SECS_PER_DAY..4 * SECS_PER_DAY);
            self.support_call(called, false);
            let visit_at = self.working_time(day);
            let outcome = if self.rng.random_bool(0.85) {
                "repaired"
            } else {
                "no_access"
            };
            self.push(Event {
                product: Some(product.as_str()),
                outcome: Some(outcome),
                address_id: Some(address_id),
                ..Event::new(visit_at, EventKind::TechnicianVisit, "field")
            });
        }

        // Opting out of push notifications or letters.
        if self.consent.push && self.rng.random_bool(0.03) {
            times.clear();
            self.arrivals(1.0 / 365.0, false, &mut times);
            if let Some(&at) = times.first() {
                self.push(Event::new(at, EventKind::Unsubscribe, "push"));
                self.consent.push = false;
            }
        }
        if self.consent.mail && self.rng.random_bool(0.01) {
            times.clear();
            self.arrivals(1.0 / 365.0, false, &mut times);
            if let Some(&at) = times.first() {
                self.push(Event::new(at, EventKind::Unsubscribe, "mail"));
                self.consent.mail = false;
            }
        }
    }

    fn support_call(&mut self, at: i64, resolved: bool) {
        if !self.is_active(at) {
            return;
        }
        self.push(Event {
            outcome: Some(if resolved { "resolved" } else { "unresolved" }),
            ..Event::new(at, EventKind::SupportCall, "phone")
        });
    }

    fn finish_events(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.events);
        // Stable: events at the same second keep the order in which they happened.
        events.sort_by_key(|e| e.at);
        events
    }
}

fn conversion_rate(offer: Offer) -> f64 {
    match offer {
        Offer::FiberUpgrade => 0.15,
        Offer::SatelliteTv => 0.12,
        Offer::MobilePlan => 0.1,
        Offer::LandlineBundle => 0.1,
        Offer::LoyaltyReward => 0.25,
        Offer::Winback => 0.25,
    }
}

fn pick_country(rng: &mut ChaCha8Rng) -> &'static Country {
    let weights: Vec<u32> = COUNTRIES.iter().map(|c| c.share).collect();
    &COUNTRIES[weighted(rng, &weights)]
}

fn make_email(rng: &mut ChaCha8Rng, country: &Country, first: &str, last: &str) -> String {
    let f = email_slug(first);
    let l = email_slug(last);
    let initial = &f[..1];
    let local = match weighted(rng, &[30, 15, 15, 10, 20, 10]) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{l}"),
        2 => format!("{initial}.{l}"),
        3 => format!("{f}_{l}"),
        4 => format!("{f}.{l}{}", rng.random_range(1..100)),
        _ => format!("{l}.{f}"),
    };
    let domain = pick(rng, country.email_domains);
    let email = format!("{local}@{domain}");
    if !rng.random_bool(0.02) {
        return email;
    }
    // What a CRM holds when nobody validated the form.
    match rng.random_range(0..6) {
        0 => email.to_uppercase(),
        1 => format!(" {email}"),
        2 => format!("{email}  "),
        3 => format!("{local}{domain}"),
        4 => format!("{local}@"),
        _ => format!("{local} at {domain}"),
    }
}

fn make_phone(rng: &mut ChaCha8Rng, country: &Country) -> String {
    if rng.random_bool(0.02) {
        return (*pick(rng, UNPARSEABLE_PHONES)).to_owned();
    }
    let mut digits: Vec<u8> = pick(rng, country.mobile_prefixes).bytes().collect();
    while digits.len() < country.nsn_len {
        digits.push(b'0' + rng.random_range(0..10u8));
    }
    let format = if rng.random_bool(0.6) {
        pick(rng, country.national_formats)
    } else {
        pick(rng, country.international_formats)
    };
    let mut next = digits.into_iter();
    format
        .chars()
        .map(|c| match c {
            'N' => char::from(next.next().unwrap_or(b'0')),
            other => other,
        })
        .collect()
}

fn fill_pattern(rng: &mut ChaCha8Rng, pattern: &str, letters: &[u8]) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '#' => char::from(b'0' + rng.random_range(0..10u8)),
            '@' => char::from(*pick(rng, letters)),
            other => other,
        })
        .collect()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Index drawn with probability proportional to its weight.
fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut r = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln() * mean
}

fn log_normal(rng: &mut ChaCha8Rng, median: f64, spread: f64) -> f64 {
    // Box–Muller.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (spread * normal).exp()
}

/// Shop prices end in .99.
fn price(amount: f64) -> f64 {
    amount.round().max(1.0) - 0.01
}
