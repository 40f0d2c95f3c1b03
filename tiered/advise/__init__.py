"""The tier placement advisor (`tiered-advise`): probe the tiers, profile the workload,
predict each candidate placement's epoch time, and recommend one (docs/advisor.md).

One concept per module: `probe` (device figures, cached per device), `profile`
(the workload's traffic, from the real sampler and cache policies), `placements`
(candidates the TierManager accepts), `cost` (the cost model: pure functions),
`guidance` (App Direct vs Memory Mode, NUMA), `report` (table, JSON, config, plot),
`cli` (the command).
"""
