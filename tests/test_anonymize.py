"""Anonymisation: positive and negative cases for every pattern, in Chinese and English."""

import datetime

import datasets
import pytest

from lstmjax.data.anonymize import (
    KINDS,
    anonymize,
    anonymize_dataset,
    is_valid_cn_id,
    luhn_valid,
)


def _kinds(text):
    return [s.kind for s in anonymize(text)[1].spans]


@pytest.mark.parametrize("text, piece, kind", [
    # e-mail
    ("mail me at john.doe+news@mail.example.co.uk today", "john.doe+news@mail.example.co.uk", "EMAIL"),
    ("邮箱：wang_li@163.com。", "wang_li@163.com", "EMAIL"),
    # URLs (trailing sentence punctuation is not part of the URL)
    ("see https://example.com/a?b=c&d=1.", "https://example.com/a?b=c&d=1", "URL"),
    ("visit www.example.org, then", "www.example.org", "URL"),
    ("访问https://example.cn/路径了解更多", "https://example.cn/", "URL"),
    ("ftp://files.example.com/x.tar.gz", "ftp://files.example.com/x.tar.gz", "URL"),
    # Chinese mobiles
    ("电话13812345678", "13812345678", "PHONE"),
    ("手机：138 1234 5678，", "138 1234 5678", "PHONE"),
    ("call 139-1234-5678 now", "139-1234-5678", "PHONE"),
    ("+86 15012345678", "+86 15012345678", "PHONE"),
    ("+86-186-1234-5678", "+86-186-1234-5678", "PHONE"),
    ("0086 17712345678", "0086 17712345678", "PHONE"),
    # international and national formats
    ("Call +44 20 7946 0958.", "+44 20 7946 0958", "PHONE"),
    ("Tel: +1 (415) 555-2671", "+1 (415) 555-2671", "PHONE"),
    ("+49 30 901820", "+49 30 901820", "PHONE"),
    ("ring (555) 123-4567", "(555) 123-4567", "PHONE"),
    ("ring 555-123-4567", "555-123-4567", "PHONE"),
    ("office 020 7946 0958", "020 7946 0958", "PHONE"),
    ("mobile 07700 900123", "07700 900123", "PHONE"),
    ("北京 010-12345678", "010-12345678", "PHONE"),
    ("深圳 0755-8888 8888", "0755-8888 8888", "PHONE"),
    # Chinese resident ID numbers (valid check character and birth date)
    ("身份证号11010519491231002X。", "11010519491231002X", "CN_ID"),
    ("id 440524198001010013 ok", "440524198001010013", "CN_ID"),
    # cards (Luhn) and other long digit runs
    ("card 4111 1111 1111 1111", "4111 1111 1111 1111", "CARD"),
    ("卡号5500-0000-0000-0004", "5500-0000-0000-0004", "CARD"),
    ("amex 378282246310005", "378282246310005", "CARD"),
    ("amex 3782 822463 10005", "3782 822463 10005", "CARD"),
    ("acct 4111 1111 1111 1112", "4111 1111 1111 1112", "DIGITS"),
    ("随机 110105194912310021", "110105194912310021", "DIGITS"),  # 18 digits, wrong check character
    ("random 110105194902301234", "110105194902301234", "DIGITS"),  # 30 February
])
def test_finds(text, piece, kind):
    out, report = anonymize(text)
    assert report.counts[kind] == 1 and report.total == 1, (out, report)
    (span,) = report.spans
    assert text[span.start:span.end] == piece and span.kind == kind
    assert out == text.replace(piece, f"<{kind}>")


@pytest.mark.parametrize("text", [
    "Released 2024-03-15 at 12:30:45",
    "2024年3月15日发布，2023/12/31 截止，15.03.2024",
    "price ¥1,299.00 or $12,345,678.90 or €1.299,00",
    "in 1998 and 2024, pages 1999-2024",
    "version 3.10.12, v1.2.3, 10.0.19045.3693",
    "IP 192.168.1.1 and 10.0.0.1",
    "pi is 3.14159265358979323846",
    "scores 100 200 3000 and 1 2 3 4 5 6 7 8 9 10 11 12 13",
    "ratio 1:2:3, 12345678901 starts with 12",
    "1,234,567,890,123,456 is a big number",
    "order 12345678 shipped; zip 100080",
    "not an email: a@b, user@localhost, @handle",
    "example.com without a scheme stays",
    "这部电影真好看，强烈推荐！",
    "A gorgeous, witty, seductive movie.",
])
def test_leaves_alone(text):
    out, report = anonymize(text)
    assert out == text and report.total == 0, report.spans


def test_mixed_text_and_report():
    text = "王女士（wang@example.cn，13812345678）住 https://x.cn/a ，卡 4111111111111111，身份证 11010519491231002X"
    out, report = anonymize(text)
    assert out == "王女士（<EMAIL>，<PHONE>）住 <URL> ，卡 <CARD>，身份证 <CN_ID>"
    assert dict(report.counts) == {"URL": 1, "EMAIL": 1, "CN_ID": 1, "PHONE": 1, "CARD": 1, "DIGITS": 0}
    assert [s.start for s in report.spans] == sorted(s.start for s in report.spans)
    for s in report.spans:  # spans index the original text and do not overlap
        assert anonymize(text[s.start:s.end])[1].spans[0].kind == s.kind
    only = anonymize(text, kinds=("EMAIL",))
    assert only[0] == text.replace("wang@example.cn", "<EMAIL>") and only[1].total == 1


def test_priority_url_with_email_and_no_overlaps():
    out, report = anonymize("https://example.com/?contact=a@b.com and a@b.com")
    assert out == "<URL> and <EMAIL>" and _kinds("https://example.com/?contact=a@b.com") == ["URL"]


def test_cn_id_checks():
    assert is_valid_cn_id("11010519491231002X") and is_valid_cn_id("11010519491231002x")
    assert not is_valid_cn_id("110105194912310021")  # check character
    assert not is_valid_cn_id("11010518991231002X")  # born before 1900 (check char recomputed below)
    future = "110105" + (datetime.date.today() + datetime.timedelta(days=2)).strftime("%Y%m%d") + "001"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(future, weights)) % 11]
    assert not is_valid_cn_id(future + check)
    assert is_valid_cn_id(future + check, today=datetime.date.today() + datetime.timedelta(days=3))
    assert not is_valid_cn_id("1101051949123100")  # too short


def test_luhn():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")  # the classic example
    with pytest.raises(ValueError, match="not a digit string"):
        luhn_valid("12a4")


def test_bad_input():
    with pytest.raises(TypeError, match="takes a string"):
        anonymize(None)
    with pytest.raises(ValueError, match="unknown kind"):
        anonymize("x", kinds=("EMAIL", "NAME"))


def test_dataset():
    ds = datasets.Dataset.from_dict({
        "text": ["call 13812345678 or 13912345678", "great film", "mail a@b.org, card 4111 1111 1111 1111", ""],
        "label": [0, 1, 1, 0]})
    out, report = anonymize_dataset(ds)
    assert out["text"][:] == ["call <PHONE> or <PHONE>", "great film", "mail <EMAIL>, card <CARD>", ""]
    assert out["label"][:] == [0, 1, 1, 0] and out.column_names == ["text", "label"]
    assert report == {"counts": {**{k: 0 for k in KINDS}, "PHONE": 2, "EMAIL": 1, "CARD": 1}, "rows": 4,
                      "rows_changed": 2}
    with pytest.raises(ValueError, match="no column 'review'"):
        anonymize_dataset(ds, "review")
    with pytest.raises(TypeError, match="row value 3 is not a string"):
        anonymize_dataset(datasets.Dataset.from_dict({"text": [3]}))
