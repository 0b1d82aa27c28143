"""Output formats. Formatting is pure (result -> text); writing is thin and lives in ``output``."""
