-- Whether this role sees the transactions of other roles in pg_stat_activity: a superuser does, and
-- so does a member of pg_read_all_stats (with its privileges, i.e. inherited); others see only their
-- own roles' sessions (xact_start and backend_xid NULL for the rest).
SELECT current_user::text AS role,
       r.rolsuper OR pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees_all
FROM pg_catalog.pg_roles AS r
WHERE r.rolname = current_user
