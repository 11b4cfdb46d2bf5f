"""The `onescreen` command's groups that stand on their own (quarantine, alerts); onescreen.py holds the rest."""
