"""Trending recipes per day, week and month: a time-decayed score of views, favorites and ratings."""
