"""The admin service: what the marketing team uses (rules, templates, results); a read API for now."""
