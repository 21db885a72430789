"""Forecasting (task type ``forecasting``): a window of a multivariate time series -> the next
``horizon`` steps. CSV series with a date column (the ETT files with the exact Informer split,
any other CSV split chronologically) or the generated Mackey-Glass series; MSE/MAE on z-scored
data as the Informer tables report them, plus NRMSE. User call ``forecast(window)`` and
``forecast_csv(path)``; CLI verb ``rnnzoo forecast``."""
