//! The index policy: which of the eight secondary indexes a store keeps, and how `explain`
//! reports the one a query uses.

/// One of the eight configurable indexes of the performance guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexName {
    /// `correlation_id`: transaction grouping (core).
    CorrelationId,
    /// `causation_id`: event relationships (core).
    CausationId,
    /// `cmd`: filtering by command.
    Cmd,
    /// `user`: filtering by user.
    User,
    /// `datetime`: time ranges.
    Datetime,
    /// `version`: filtering by schema version.
    Version,
    /// `(correlation_id, cmd)` composite.
    CorrelationCmd,
    /// `(user, datetime)` composite.
    UserDatetime,
}

impl IndexName {
    /// All eight, in the guide's order.
    pub const ALL: [IndexName; 8] = [
        IndexName::CorrelationId,
        IndexName::CausationId,
        IndexName::Cmd,
        IndexName::User,
        IndexName::Datetime,
        IndexName::Version,
        IndexName::CorrelationCmd,
        IndexName::UserDatetime,
    ];

    /// The guide's configuration key (`"correlation_id"`, …, `"user_datetime"`).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexName::CorrelationId => "correlation_id",
            IndexName::CausationId => "causation_id",
            IndexName::Cmd => "cmd",
            IndexName::User => "user",
            IndexName::Datetime => "datetime",
            IndexName::Version => "version",
            IndexName::CorrelationCmd => "correlation_cmd",
            IndexName::UserDatetime => "user_datetime",
        }
    }

    /// Parses a configuration key back.
    pub fn parse(s: &str) -> Option<IndexName> {
        IndexName::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

impl std::fmt::Display for IndexName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which indexes a store keeps. Opening a store makes its file match this exactly: enabled
/// indexes are created (and back-filled), disabled ones dropped. Indexes change speed, never
/// results.
///
/// `Default` is the guide's default: the two core indexes on, the rest off. Use struct update
/// syntax to change a few flags and keep the rest:
///
/// ```
/// use eventlite_core::IndexConfig;
/// let config = IndexConfig { cmd: true, ..IndexConfig::default() };
/// assert!(config.correlation_id && config.causation_id && config.cmd && !config.user);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexConfig {
    /// See [`IndexName::CorrelationId`].
    pub correlation_id: bool,
    /// See [`IndexName::CausationId`].
    pub causation_id: bool,
    /// See [`IndexName::Cmd`].
    pub cmd: bool,
    /// See [`IndexName::User`].
    pub user: bool,
    /// See [`IndexName::Datetime`].
    pub datetime: bool,
    /// See [`IndexName::Version`].
    pub version: bool,
    /// See [`IndexName::CorrelationCmd`].
    pub correlation_cmd: bool,
    /// See [`IndexName::UserDatetime`].
    pub user_datetime: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig::high_volume()
    }
}

impl IndexConfig {
    /// No secondary index at all.
    pub fn none() -> Self {
        IndexConfig {
            correlation_id: false,
            causation_id: false,
            cmd: false,
            user: false,
            datetime: false,
            version: false,
            correlation_cmd: false,
            user_datetime: false,
        }
    }

    /// All eight indexes.
    pub fn all() -> Self {
        IndexConfig::from_names(IndexName::ALL)
    }

    /// The guide's high-volume ingestion profile: the two core indexes.
    pub fn high_volume() -> Self {
        IndexConfig::from_names([IndexName::CorrelationId, IndexName::CausationId])
    }

    /// The guide's balanced profile: core indexes plus `cmd` and `datetime`.
    pub fn balanced() -> Self {
        IndexConfig {
            cmd: true,
            datetime: true,
            ..IndexConfig::high_volume()
        }
    }

    /// The guide's query-optimised profile: everything but `user_datetime`.
    pub fn query_optimized() -> Self {
        IndexConfig {
            user_datetime: false,
            ..IndexConfig::all()
        }
    }

    /// Exactly the named indexes.
    pub fn from_names(names: impl IntoIterator<Item = IndexName>) -> Self {
        let mut config = IndexConfig::none();
        for name in names {
            config.set(name, true);
        }
        config
    }

    /// Whether `name` is enabled.
    pub fn is_enabled(&self, name: IndexName) -> bool {
        match name {
            IndexName::CorrelationId => self.correlation_id,
            IndexName::CausationId => self.causation_id,
            IndexName::Cmd => self.cmd,
            IndexName::User => self.user,
            IndexName::Datetime => self.datetime,
            IndexName::Version => self.version,
            IndexName::CorrelationCmd => self.correlation_cmd,
            IndexName::UserDatetime => self.user_datetime,
        }
    }

    /// Enables or disables `name`.
    pub fn set(&mut self, name: IndexName, enabled: bool) {
        let flag = match name {
            IndexName::CorrelationId => &mut self.correlation_id,
            IndexName::CausationId => &mut self.causation_id,
            IndexName::Cmd => &mut self.cmd,
            IndexName::User => &mut self.user,
            IndexName::Datetime => &mut self.datetime,
            IndexName::Version => &mut self.version,
            IndexName::CorrelationCmd => &mut self.correlation_cmd,
            IndexName::UserDatetime => &mut self.user_datetime,
        };
        *flag = enabled;
    }

    /// The enabled indexes, in the guide's order.
    pub fn enabled(&self) -> Vec<IndexName> {
        IndexName::ALL
            .into_iter()
            .filter(|n| self.is_enabled(*n))
            .collect()
    }
}

/// How an engine runs a query, as reported by `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    /// The secondary index used, if any.
    pub index: Option<IndexName>,
    /// Whether the engine reads every event (no index and no id range narrows it).
    pub full_scan: bool,
    /// Whether the engine sorts the matches after reading them, instead of reading them in
    /// the query's order (a limit then still reads every match).
    pub sorts: bool,
    /// The engine's own words (SQLite's `EXPLAIN QUERY PLAN`, or our planner's description).
    pub detail: String,
}
