//! Both stores in one program: EventLite's SQLite engine and sqlx's SQLite driver.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("eventlite-sqlx-compat");
    std::fs::create_dir_all(&dir)?;
    let store = eventlite::open(dir.join("events.sqlite"))?;
    store.store(eventlite::NewEvent::new("checked"))?;
    let _options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("app.sqlite"));
    Ok(())
}
