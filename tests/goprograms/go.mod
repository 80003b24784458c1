module goparkfixtures

go 1.21
