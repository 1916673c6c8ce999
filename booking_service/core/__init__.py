"""The service layer (no Flask): places, booking, holds, moves, waitlist, visits, accounts."""
