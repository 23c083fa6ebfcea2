package ledger

// MeterBudgets exposes the budget cache to the tests in ledger_test, which
// run on a real store (a store imports ledger, so they cannot be in package ledger).
var MeterBudgets = (*Meter).budgets
