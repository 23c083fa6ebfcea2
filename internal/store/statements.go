package store

const (
	sqlEnsureWindow = `INSERT INTO budget_windows (budget_id, period_start, spent, reserved) VALUES (?, ?, 0, 0)
				ON CONFLICT (budget_id, period_start) DO NOTHING`
	// sqlHoldWithin takes a hold only while the budget keeps it (see Reserve).
	sqlHoldWithin = `UPDATE budget_windows SET reserved = reserved + ? WHERE budget_id = ? AND period_start = ?
				AND spent + reserved + ? <= (SELECT amount FROM budgets WHERE id = ?)`
	sqlHoldSoft          = `UPDATE budget_windows SET reserved = reserved + ? WHERE budget_id = ? AND period_start = ?`
	sqlInsertReservation = `INSERT INTO reservations (id, holds, created_at, expires_at) VALUES (?, ?, ?, ?)`
	sqlDeleteReservation = `DELETE FROM reservations WHERE id = ?`
	// sqlSettleWindow spends and releases (its last argument is minus the
	// release); it creates the window when the holds were kept in memory.
	sqlSettleWindow = `INSERT INTO budget_windows (budget_id, period_start, spent, reserved) VALUES (?, ?, ?, ?)
				ON CONFLICT (budget_id, period_start) DO UPDATE SET reserved = budget_windows.reserved + excluded.reserved, spent = budget_windows.spent + excluded.spent`
	sqlReleaseWindow = `UPDATE budget_windows SET reserved = reserved - ? WHERE budget_id = ? AND period_start = ?`
	sqlInsertUsage   = `INSERT INTO usage_ledger (request_id, attempt, created_at, key_id, project_id, provider, model,
			prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost, currency, priced, estimated, status, latency_us, price_ref,
			client_request_id, images, usage_flags, purpose)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, attempt) DO NOTHING`
)

// hotWrites are the statements every metered request runs; prepared once.
var hotWrites = []string{
	sqlEnsureWindow,
	sqlHoldWithin,
	sqlHoldSoft,
	sqlInsertReservation,
	sqlDeleteReservation,
	sqlSettleWindow,
	sqlReleaseWindow,
	sqlInsertUsage,
	sqlTakeWindow,
	sqlTakeHourly,
	insertRequestLog(1),
	insertRequestLog(requestLogChunk),
}
