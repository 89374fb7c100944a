"""The workflow config: read and checked against its schema (validate), defaults filled from the schema
(schema), task data checked once per content (taskcheck), and what a valid config asks the workflow to do,
with the slices the rules pass as params (plan)."""
from .errors import ConfigError
from .plan import canonical
from .validate import job_setting, load_config, validate_config

__all__ = ["ConfigError", "canonical", "job_setting", "load_config", "validate_config"]
