SELECT late_horizon, high_watermark FROM warehouse_sync.sync_state WHERE pipeline = %(pipeline)s
