"""The only place that builds SELECT/INSERT/UPDATE/DELETE statements. One class per aggregate."""
