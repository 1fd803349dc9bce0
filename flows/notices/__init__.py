"""Notifications: who hears of which event (the inbox and the bell), and their e-mail copies sent after commit."""
