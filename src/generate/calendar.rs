//! The generated time window: its days, month partitions, purchase seasonality and the campaign
//! calendar shared by every customer.
//!
//! Times inside the generator are whole seconds since the start of the window (midnight UTC of
//! `start`); days are day numbers since `start` (negative before the window).

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};

pub(super) const SECS_PER_DAY: i64 = 86_400;
pub(super) const SECS_PER_HOUR: i64 = 3_600;

/// What a campaign message promotes (the `offer` column of interactions).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Offer {
    FiberUpgrade,
    SatelliteTv,
    MobilePlan,
    LoyaltyReward,
    Winback,
    LandlineBundle,
}

impl Offer {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Offer::FiberUpgrade => "fiber_upgrade",
            Offer::SatelliteTv => "satellite_tv",
            Offer::MobilePlan => "mobile_plan",
            Offer::LoyaltyReward => "loyalty_reward",
            Offer::Winback => "winback",
            Offer::LandlineBundle => "landline_bundle",
        }
    }

    /// The short name used in campaign ids (`cmp-2026-03-fiber`).
    fn slug(self) -> &'static str {
        match self {
            Offer::FiberUpgrade => "fiber",
            Offer::SatelliteTv => "sattv",
            Offer::MobilePlan => "mobile",
            Offer::LoyaltyReward => "loyalty",
            Offer::Winback => "winback",
            Offer::LandlineBundle => "landline",
        }
    }

    /// Whether the offer runs in a calendar month, the weekday its e-mails go out, and whether
    /// it also has an SMS leg.
    fn schedule(self, month: u32) -> Option<(Weekday, bool)> {
        match self {
            Offer::FiberUpgrade => Some((Weekday::Tue, true)),
            Offer::MobilePlan => Some((Weekday::Thu, true)),
            Offer::Winback => Some((Weekday::Fri, true)),
            Offer::SatelliteTv => (month % 2 == 1).then_some((Weekday::Wed, false)),
            Offer::LoyaltyReward => month.is_multiple_of(3).then_some((Weekday::Mon, false)),
            Offer::LandlineBundle => (month % 3 == 2).then_some((Weekday::Mon, false)),
        }
    }

    const ALL: [Offer; 6] = [
        Offer::FiberUpgrade,
        Offer::SatelliteTv,
        Offer::MobilePlan,
        Offer::LoyaltyReward,
        Offer::Winback,
        Offer::LandlineBundle,
    ];
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum SendChannel {
    Email,
    Sms,
}

/// One monthly campaign: the same offer sent every week of the month to its audience.
pub(super) struct Campaign {
    pub id: String,
    pub offer: Offer,
}

/// One scheduled batch send of a campaign; each recipient gets it somewhat later than `at`.
pub(super) struct Send {
    pub at: i64,
    pub campaign: u32,
    pub channel: SendChannel,
}

pub(super) struct Window {
    pub days: i32,
    start: NaiveDate,
    start_micros: i64,
    /// `(year, month)` of every calendar month the window touches, in order.
    pub partitions: Vec<(i32, u32)>,
    day_partition: Vec<u16>,
    season: Vec<f64>,
    pub season_max: f64,
    pub campaigns: Vec<Campaign>,
    /// Every send of every campaign, ordered by time.
    pub sends: Vec<Send>,
}

impl Window {
    /// `None` when the window does not fit chrono's calendar.
    pub(super) fn new(start: NaiveDate, days: u32) -> Option<Window> {
        let days = i32::try_from(days).ok()?;
        start.checked_add_signed(TimeDelta::days(i64::from(days)))?;
        let start_micros = start.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();

        let mut partitions: Vec<(i32, u32)> = Vec::new();
        let mut day_partition = Vec::with_capacity(days as usize);
        let mut season = Vec::with_capacity(days as usize);
        for day in 0..days {
            let date = start + TimeDelta::days(i64::from(day));
            let key = (date.year(), date.month());
            if partitions.last() != Some(&key) {
                partitions.push(key);
            }
            day_partition.push(u16::try_from(partitions.len() - 1).ok()?);
            season.push(seasonality(date));
        }
        let season_max = season.iter().copied().fold(1.0, f64::max);

        let mut window = Window {
            days,
            start,
            start_micros,
            partitions,
            day_partition,
            season,
            season_max,
            campaigns: Vec::new(),
            sends: Vec::new(),
        };
        window.plan_campaigns();
        Some(window)
    }

    pub(super) fn end_secs(&self) -> i64 {
        i64::from(self.days) * SECS_PER_DAY
    }

    pub(super) fn date(&self, day: i32) -> NaiveDate {
        self.start + TimeDelta::days(i64::from(day))
    }

    /// Microseconds since the Unix epoch (UTC) of a time in the window.
    pub(super) fn micros(&self, at: i64) -> i64 {
        self.start_micros + at * 1_000_000
    }

    /// Index into `partitions` of the month holding a time in the window.
    pub(super) fn partition_of(&self, at: i64) -> usize {
        usize::from(self.day_partition[(at / SECS_PER_DAY) as usize])
    }

    /// Relative purchase intensity of a day (1.0 is an ordinary weekday).
    pub(super) fn season(&self, day: i32) -> f64 {
        self.season[day as usize]
    }

    /// Monthly campaigns per offer: e-mails every week on the offer's weekday at 09:00, and for
    /// some offers an SMS at 12:00 the day after the first and third e-mail of the month.
    fn plan_campaigns(&mut self) {
        for &(year, month) in &self.partitions {
            for offer in Offer::ALL {
                let Some((weekday, with_sms)) = offer.schedule(month) else {
                    continue;
                };
                let campaign = self.campaigns.len() as u32;
                let mut emails = 0;
                for day in 0..self.days {
                    let date = self.date(day);
                    if (date.year(), date.month()) != (year, month) || date.weekday() != weekday {
                        continue;
                    }
                    let midnight = i64::from(day) * SECS_PER_DAY;
                    self.sends.push(Send {
                        at: midnight + 9 * SECS_PER_HOUR,
                        campaign,
                        channel: SendChannel::Email,
                    });
                    emails += 1;
                    if with_sms && (emails == 1 || emails == 3) && day + 1 < self.days {
                        self.sends.push(Send {
                            at: midnight + SECS_PER_DAY + 12 * SECS_PER_HOUR,
                            campaign,
                            channel: SendChannel::Sms,
                        });
                    }
                }
                if emails > 0 {
                    self.campaigns.push(Campaign {
                        id: format!("cmp-{year:04}-{month:02}-{}", offer.slug()),
                        offer,
                    });
                }
            }
        }
        self.sends.sort_by_key(|send| (send.at, send.campaign));
    }
}

/// December gifts, Black Friday to Cyber Monday, the January lull, summer holidays and weekends.
fn seasonality(date: NaiveDate) -> f64 {
    let black_friday = black_friday(date.year());
    let cyber_monday = black_friday + TimeDelta::days(3);
    let mut factor = if (black_friday..=cyber_monday).contains(&date) {
        3.5
    } else if (black_friday - TimeDelta::days(7)..black_friday).contains(&date) {
        1.3
    } else {
        match (date.month(), date.day()) {
            (12, 25) => 0.3,
            (12, 1..=24) => 1.8,
            (12, _) => 1.4,
            (1, _) => 0.75,
            (2, _) => 0.85,
            (7 | 8, _) => 0.9,
            _ => 1.0,
        }
    };
    if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        factor *= 1.15;
    }
    factor
}

/// The Friday after the fourth Thursday of November.
fn black_friday(year: i32) -> NaiveDate {
    let thanksgiving = NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4)
        .expect("every November has four Thursdays");
    thanksgiving + TimeDelta::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn black_friday_2026_is_the_27th() {
        assert_eq!(black_friday(2026), date("2026-11-27"));
        assert_eq!(black_friday(2025), date("2025-11-28"));
    }

    #[test]
    fn partitions_follow_calendar_months() {
        let window = Window::new(date("2025-12-01"), 365).unwrap();
        assert_eq!(window.partitions.first(), Some(&(2025, 12)));
        assert_eq!(window.partitions.last(), Some(&(2026, 11)));
        assert_eq!(window.partitions.len(), 12);
        assert_eq!(window.partition_of(31 * SECS_PER_DAY), 1);
    }

    #[test]
    fn campaigns_repeat_weekly_within_the_window() {
        let window = Window::new(date("2026-03-01"), 31).unwrap();
        let fiber = window
            .campaigns
            .iter()
            .position(|c| c.id == "cmp-2026-03-fiber")
            .unwrap() as u32;
        let emails = window
            .sends
            .iter()
            .filter(|s| s.campaign == fiber && s.channel == SendChannel::Email)
            .count();
        assert_eq!(emails, 5, "March 2026 has five Tuesdays");
        assert!(window.sends.iter().all(|s| s.at < window.end_secs()));
        assert!(window.sends.is_sorted_by_key(|s| s.at));
    }
}
